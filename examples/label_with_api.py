"""Label a digits run for three rounds through calkit's Python API, as a labeling tool would.

    python examples/label_with_api.py [RUN_DIR]

The "person" here looks the answers up in the dataset's known labels; in a real tool, show
``item.display`` (an 8x8 image here, the text of a text item) and take the answer from a person.
Rerunning the script with the same RUN_DIR continues the run where it stopped.
"""

from __future__ import annotations

import sys

import calkit


def main(path: str = "runs/api-demo") -> int:
    truth = calkit.load_dataset("digits")  # stands in for a person who knows every answer
    try:
        run = calkit.Run.open(path)
    except calkit.CalkitError:
        run = calkit.Run.create(path, dataset="digits", oracle="people", policy="cal", initial=100,
                                round_size=50, rounds=3, seed=0)
    with run:
        status = run.status()
        while not status.complete:
            items = run.pending()
            answers = {item.id: int(truth.y_train[truth.positions([item.id])[0]]) for item in items}
            result = run.submit(answers, annotator="ana")
            status = run.advance()  # trains once the round is complete, then opens the next query
            record = run.metrics()[-1]
            print(f"round {record['round']}: {result.added} labels from ana, {record['labeled']} labeled, "
                  f"test accuracy {record['test_accuracy']:.3f}; now {status.state.replace('_', ' ')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
