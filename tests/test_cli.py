"""The command line as a user meets it: run, report, config files, and errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from calkit import __version__
from calkit.cli import main

QUICK = ["--model", "mlp:32", "--initial", "50", "--round-size", "50", "--rounds", "3", "--epochs", "2"]


def test_run_on_digits_prints_a_round_table_and_report_plots(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--dataset", "digits", *QUICK, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "digits: pool 1149, validation 288, test 360" in printed
    assert "test_acc" in printed and "done: 150 labels in 3 rounds" in printed
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["labeled"] for x in lines] == [50, 100, 150]

    assert main(["report", str(out)]) == 0
    report = capsys.readouterr().out
    assert "sample-gradients" in report and "stopping rule: fixed 2 epochs" in report
    assert "learning curve: 3 trained rounds with an accuracy; a forecast needs 4" in report
    png = out / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_yaml_config_with_flag_override(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("dataset: digits\nmodel: mlp:32\ninitial: 40\nround-size: 20\nrounds: 2\nepochs: 1\nacquisition: margin\n")
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--acquisition", "random", "--out", str(out)]) == 0
    saved = (out / "config.yaml").read_text()
    assert "acquisition: random" in saved and "initial: 40" in saved
    assert "done: 60 labels" in capsys.readouterr().out


def test_train_accuracy_flag_overrides_epochs_from_config(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("dataset: digits\nmodel: mlp:32\ninitial: 40\nrounds: 1\nepochs: 1\n")
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--train-accuracy", "0.5", "--max-epochs", "5", "--out", str(out)]) == 0
    assert "until running train accuracy >= 0.5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "digits", "--budget", "5000"], "larger than the pool"),
        (["--dataset", "digits", "--rounds", "3", "--policy", "magic"], "unknown policy 'magic'"),
        (["--dataset", "nowhere.npz", "--rounds", "3"], "nowhere.npz"),
        (["--dataset", "digits", "--rounds", "3", "--budget", "lots"], "cannot read budget"),
        (["--dataset", "digits", "--rounds", "0"], "rounds must be a positive integer"),
        (["--dataset", "digits", "--rounds", "3", "--optimizer", "adamw"], "unknown optimizer 'adamw'"),
        (["--dataset", "digits", "--rounds", "3", "--lr", "-1"], "learning rate must be a positive number"),
        (["--dataset", "digits", "--rounds", "3", "--lr", "inf"], "lr must be a finite number"),
        (["--dataset", "digits", "--rounds", "3", "--epochs", "0"], "epochs must be a positive integer"),
        (["--dataset", "digits", "--rounds", "3", "--train-accuracy", "2"], "train-accuracy must be in (0, 1]"),
        (["--dataset", "digits", "--rounds", "3", "--seed", "-1"], "seed must be a non-negative integer"),
        (["--dataset", "digits", "--rounds", "3", "--policy", "er", "--new-accuracy", "nan"], "new-accuracy must be"),
        (["--dataset", "digits", "--rounds", "3", "--policy", "sd", "--alpha", "nan"], "alpha must be a finite"),
        (["--dataset", "digits", "--rounds", "3", "--policy", "sds2", "--kernel-width", "inf"], "kernel-width must be"),
        (["--dataset", "digits", "--rounds", "3", "--pool-size", "0"], "pool-size must be a positive integer"),
        (["--dataset", "digits", "--rounds", "3", "--weight-decay", "nan"], "weight-decay must be a finite number"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, capsys, args, message):
    assert main(["run", *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("calkit: error:") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # a rerun is a fresh start, not a "resume" of a broken run


def test_report_and_resume_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert main(["resume", str(tmp_path)]) == 2
    assert "not a calkit run directory" in capsys.readouterr().err


def test_version_answers_without_importing_torch(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"calkit {__version__}"
    script = "import sys\nfrom calkit.cli import main\nmain(['--version'])\nprint('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["calkit", __version__, "False"], done.stderr


def test_status_says_where_a_run_stands_and_exits_like_resume_would_stop(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--dataset", "digits", *QUICK, "--oracle", "people", "--out", str(out), "--quiet"]) == 3
    capsys.readouterr()
    assert main(["status", str(out)]) == 3
    line = capsys.readouterr().out
    assert "awaiting labels, round 0 (rounds 0-2), 0 of 150 labels trained on; 50 items await labels" in line
    assert main(["status", str(out), "--json"]) == 3
    status = json.loads(capsys.readouterr().out)
    assert (status["state"], status["round"], status["pending"], status["oracle"]) == ("awaiting_labels", 0, 50, "people")
    assert main(["status", str(tmp_path / "nowhere")]) == 2
    assert "not a calkit run directory" in capsys.readouterr().err


def test_every_boolean_has_a_no_form_that_reaches_the_config(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--dataset", "digits", *QUICK, "--rounds", "1", "--policy", "cal", "--no-lr-scaling",
                 "--out", str(out), "--quiet"]) == 0
    saved = (out / "config.yaml").read_text()
    assert "lr_scaling: false" in saved and "mir_sampling: false" in saved
    assert "resolved: true" in saved and "shrink: 0.9" in saved and "replay_ratio: 1.0" in saved  # cal, written out


def test_files_is_kept_as_an_alias_of_people(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--dataset", "digits", *QUICK, "--oracle", "files", "--out", str(out), "--quiet"]) == 3
    assert "oracle: people" in (out / "config.yaml").read_text()
