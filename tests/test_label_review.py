"""Label-error review: confident learning on the selecting models' out-of-sample predictions."""

from __future__ import annotations

import numpy as np

from calkit import Run
from calkit.cli import main
from calkit.label_review import rank_suspects, selector_round
from calkit.noise import NoiseModel
from tests.conftest import make_blobs, save_npz


def test_confident_learning_puts_confidently_wrong_labels_first():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.3, 0.7], [0.9, 0.1]])
    given = np.array([0, 0, 1, 1, 1])  # the last one is labeled 1 but looks like a clear 0
    ranked = rank_suspects(np.arange(5) + 10, np.zeros(5, dtype=int), given, probs)
    assert ranked[0].item_id == 14 and ranked[0].confident and ranked[0].likely == 0
    assert [s.confident for s in ranked].count(True) == 1
    assert ranked[1].self_confidence <= ranked[2].self_confidence


def test_the_model_that_chose_a_round():
    assert [selector_round(t, False) for t in range(4)] == [None, 0, 1, 2]
    assert [selector_round(t, True) for t in range(4)] == [None, 0, 0, 1]


def test_a_noisy_run_finds_its_wrong_labels_far_above_chance(tmp_path, capsys):
    ds = make_blobs(n_pool=400, spread=1.2)
    run = Run.create(tmp_path / "run", dataset=str(save_npz(ds, tmp_path / "blobs.npz")), initial=60, round_size=40, rounds=5, epochs=5, model="mlp:16",
                     label_noise=0.15, seed=2)
    run.advance()
    suspects = run.review_labels()
    pool = run.dataset  # as loaded from the file: a validation split carved out
    positions = pool.positions(np.array([s.item_id for s in suspects]))
    _, flipped = NoiseModel("uniform", 0.15).answers(pool.y_train[positions], positions, pool.pool_size, 3, seed=2)
    k = int(flipped.sum())
    assert len(suspects) == 220 and k > 10
    precision = flipped[:k].mean()
    assert precision > 0.5, precision  # chance is 0.15
    assert {s.item_id for s in run.review_labels("selection")} == {s.item_id for s in suspects}
    run.close()
    assert main(["review", str(tmp_path / "run"), "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "agreed labels are confidently another class" in out and len(out.splitlines()) == 7
