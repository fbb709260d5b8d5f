"""``crossrank tune`` as a user runs it: killed with SIGKILL during a trial, then the same
command again; a bad search space is one line before any work; help names what is read."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tune_data import write_clicks

from crossrank.cli import main

CONFIG = """
[model]
name = "dnn"
embedding_dim = 4
deep_layers = [16]

[training]
epochs = 4
batch_size = 64
patience = 9
threads = 1

[tune]
default_space = false

[tune.space]
"training.lr" = {low = 1e-3, high = 1e-1, log = true}
"model.dropout" = [0.0, 0.3]
"""


def _states(db: Path, *, writer_alive: bool = False) -> dict[int, str]:
    """{trial number: state} as Optuna's SQLite storage holds them. While another process
    writes, read only, and a locked database reads as nothing yet; once it is dead, read as
    a writer would, so that a transaction the kill cut short is rolled back first."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro" if writer_alive else f"file:{db}", uri=True,
                             timeout=5) as con:
            return dict(con.execute("SELECT number, state FROM trials").fetchall())
    except sqlite3.OperationalError:
        if writer_alive:
            return {}
        raise


def _values(db: Path) -> dict[int, float]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT t.number, v.value FROM trials t JOIN trial_values v "
                                "ON v.trial_id = t.trial_id").fetchall())


def test_kill_9_during_a_trial_then_the_same_command_continues(tmp_path, capsys):
    data = write_clicks(tmp_path / "clicks.csv", rows=1500)
    (tmp_path / "base.toml").write_text(CONFIG)
    out = tmp_path / "study"
    args = ["tune", "--data", str(data), "--config", str(tmp_path / "base.toml"), "--trials",
            "4", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "crossrank", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            states = _states(out / "study.db", writer_alive=True) \
                if (out / "study.db").exists() else {}
            # a trial finished and the next one is under way: kill it there
            if "COMPLETE" in states.values() and "RUNNING" in states.values():
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the study ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    before = _states(out / "study.db")
    running = [n for n, s in before.items() if s == "RUNNING"]
    kept = {n: v for n, v in _values(out / "study.db").items() if before[n] == "COMPLETE"}
    assert len(running) == 1 and kept
    assert main(args) == 0  # the same command again (in this process: one start-up less)
    printed = capsys.readouterr().out
    assert f"trial #{running[0]} was left running by an interrupted study: marked failed" \
        in printed
    after = _states(out / "study.db")
    assert after[running[0]] == "FAIL"
    assert sum(s in ("COMPLETE", "PRUNED") for s in after.values()) == 4
    assert {n: v for n, v in _values(out / "study.db").items() if n in kept} == kept
    assert (out / "best.toml").is_file() and (out / "history.png").is_file()
    assert "best trial #" in printed


@pytest.mark.parametrize("entry, message", [
    ('"training.lr" = {low = 0.1, high = 0.01}', "tune.space 'training.lr': low 0.1 must be "
                                                 "below high 0.01"),
    ('"model.drop" = [0.1, 0.2]', "tune.space 'model.drop': unknown option; did you mean "
                                  "'model.dropout'?"),
    ('"model.norm" = ["none", "group"]', "tune.space 'model.norm': group does not build a run"),
])
def test_a_bad_space_is_one_line_before_any_work(tmp_path, capsys, entry, message):
    (tmp_path / "bad.toml").write_text(f'[model]\nname = "dnn"\n\n[tune.space]\n{entry}\n')
    data = write_clicks(tmp_path / "clicks.csv", rows=50)
    code = main(["tune", "--data", str(data), "--config", str(tmp_path / "bad.toml"),
                 "--out", str(tmp_path / "study")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("crossrank tune: error: " + message)
    assert not (tmp_path / "study").exists()


def test_train_takes_a_config_with_a_tune_table(tmp_path, capsys):
    (tmp_path / "base.toml").write_text(CONFIG.replace("epochs = 4", "epochs = 1"))
    data = write_clicks(tmp_path / "clicks.csv", rows=300)
    assert main(["train", "--data", str(data), "--config", str(tmp_path / "base.toml"),
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert "[tune" not in (tmp_path / "run" / "run.toml").read_text()


def test_help_says_the_test_data_is_never_read(capsys):
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a test file is never an input" in text
    assert "Only the training data is read" in text and "dcn-mix:" in text


@pytest.mark.parametrize("folds, message", [
    ("0", "--folds must be a positive integer, got 0"),
    ("2.5", "--folds must be a positive integer, got '2.5'"),
    ("7", "--folds 7: 50 rows hold 5 disjoint validation blocks of training.valid_fraction "
          "0.2; give --folds <= 5 or a smaller --valid-fraction"),
])
def test_bad_folds_are_one_line_before_any_trial(tmp_path, capsys, folds, message):
    data = write_clicks(tmp_path / "clicks.csv", rows=50)
    code = main(["tune", "--data", str(data), "--model", "dnn", "--valid-fraction", "0.2",
                 "--folds", folds, "--out", str(tmp_path / "study")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"crossrank tune: error: {message}\n"
    assert not (tmp_path / "study" / "study.db").exists()
