"""A training run's output directory: one writer at a time (real processes racing for it), no
model replaced without --overwrite, and --resume continuing the same run or naming every
option that changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from crossrank.cli import build_parser, main
from crossrank.data import write_default_synthetic
from crossrank.pipeline.run_dir import LOCK_FILE, RunDirLock

SRC = Path(__file__).resolve().parents[2] / "src"
SMALL = ["--no-progress", "--embedding-dim", "4", "--model-option", "cross.rank=4",
         "--model-option", "deep_layers=[8]", "--batch-size", "256", "--seed", "0"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


def _train(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "crossrank", "train", *argv], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run-dir")
    write_default_synthetic(root / "train.tsv", 3000, seed=3)
    write_default_synthetic(root / "other.tsv", 3000, seed=4)
    return root


# ---------------------------------------------------------------------- one writer (item 5)
def test_two_trainings_started_at_once_into_one_directory(tmp_path):
    out = tmp_path / "run"
    argv = ["--synthetic-rows", "20000", "--epochs", "3", "--threads", "1", "--out", str(out),
            *SMALL]
    first, second = _train(argv), _train(argv)
    results = {p.pid: (p.wait(timeout=600), *p.communicate()) for p in (first, second)}
    codes = sorted(code for code, _, _ in results.values())
    assert codes == [0, 2], results
    winner = next(pid for pid, (code, _, _) in results.items() if code == 0)
    _, _, err = next(r for r in results.values() if r[0] == 2)
    assert err.strip() == (err.strip().splitlines() or [""])[0]  # one line
    assert f"crossrank train: error: {out}: another training is writing into this directory " \
           f"(pid {winner} on " in err
    # the winner's run alone: each epoch once, in order, and its lock is gone
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert not (out / LOCK_FILE).exists()


def test_a_training_into_a_locked_directory_names_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    with RunDirLock(out):
        assert (out / LOCK_FILE).is_file()
        err = _error(capsys, ["train", "--synthetic-rows", "500", "--out", str(out), *SMALL])
    assert f"{out}: another training is writing into this directory (pid {os.getpid()} on " in err
    assert "wait for it to end, or give another --out" in err
    assert not (out / "model.json").exists() and not (out / "synthetic_train.tsv").exists()


_HOLDER = """
import sys, time
from crossrank.pipeline.run_dir import RunDirLock
RunDirLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_lock_left_by_a_killed_training_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], env=_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        err = _error(capsys, ["train", "--synthetic-rows", "500", "--out", str(out), *SMALL])
        assert f"(pid {holder.pid} on " in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert f'"pid": {holder.pid}' in (out / LOCK_FILE).read_text()  # left behind, stale
    capsys.readouterr()
    assert main(["train", "--synthetic-rows", "500", "--epochs", "1", "--out", str(out),
                 *SMALL]) == 0
    assert f"took over the lock left in {out} by pid {holder.pid} on " in capsys.readouterr().out
    assert not (out / LOCK_FILE).exists()


# ------------------------------------------------------------ no silent replacement (item 6)
def test_a_fresh_run_refuses_a_directory_holding_a_model(data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(data / "train.tsv"), "--out", str(out), *SMALL]
    assert main(argv + ["--epochs", "2"]) == 0
    weights = (out / "model.safetensors").read_bytes()
    err = _error(capsys, argv + ["--epochs", "1"])
    assert err == (f"crossrank train: error: {out} already holds a trained model (model.json); "
                   "give --overwrite to replace it, --resume to continue it, or another --out")
    assert (out / "model.safetensors").read_bytes() == weights  # untouched
    assert main(argv + ["--epochs", "1", "--overwrite"]) == 0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]  # the new run's only
    assert json.loads((out / "model.json").read_text())["train_config"]["epochs"] == 1


def test_the_default_directory_is_protected_too(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--synthetic-rows", "500", "--epochs", "1", *SMALL]
    assert main(argv) == 0
    assert (tmp_path / "runs" / "latest" / "model.json").is_file()
    assert "runs/latest already holds a trained model" in _error(capsys, argv)
    # --overwrite starts over: the old synthetic file is not reused for other rows
    assert main(argv[:1] + ["--synthetic-rows", "700"] + argv[3:] + ["--overwrite"]) == 0
    rows = (tmp_path / "runs" / "latest" / "synthetic_train.tsv").read_text().count("\n")
    assert rows == 700


def test_help_names_overwrite_and_resume(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--overwrite replace the model already in --out" in text
    assert "--out X --resume is enough" in text
    assert "epochs, patience, progress, threads, device and keep_parsed_mb" in text


def test_resume_and_overwrite_exclude_each_other(tmp_path, capsys):
    err = _error(capsys, ["train", "--out", str(tmp_path / "run"), "--resume", "--overwrite"])
    assert "give one of them" in err


def test_resume_with_nothing_to_resume(tmp_path, capsys):
    err = _error(capsys, ["train", "--synthetic-rows", "500", "--out", str(tmp_path / "run"),
                          "--resume"])
    assert "nothing to resume (no state.json" in err


# ------------------------------------------------------------- resume = the same run (item 7)
@pytest.fixture
def interrupted(data, tmp_path) -> tuple[Path, list[str]]:
    """A run 'interrupted' after 1 of 2 epochs, and the flags it was started with."""
    argv = ["--data", str(data / "train.tsv"), "--lr", "0.003", *SMALL]
    assert main(["train", *argv, "--epochs", "1", "--out", str(tmp_path / "part")]) == 0
    return tmp_path / "part", argv


def test_resume_with_only_out_continues_the_saved_run(interrupted, tmp_path, capsys):
    part, argv = interrupted
    assert main(["train", *argv, "--epochs", "2", "--out", str(tmp_path / "full")]) == 0
    capsys.readouterr()
    # typed: --resume, --out and the one option that changes; the rest is the saved run's
    assert main(["train", "--resume", "--out", str(part), "--epochs", "2"]) == 0
    assert "resuming the run in" in capsys.readouterr().out
    full, resumed = (load_file(str(d / "latest.safetensors")) for d in (tmp_path / "full", part))
    assert full.keys() == resumed.keys()
    for key in full:
        assert (full[key] == resumed[key]).all(), key
    toml = (part / "run.toml").read_text()  # the run as it continued
    assert "lr = 0.003" in toml and "epochs = 2" in toml and f'path = "{argv[1]}"' in toml


def test_resume_may_change_how_long_and_how_visibly_it_trains(interrupted):
    part, argv = interrupted
    assert main(["train", *argv, "--resume", "--out", str(part), "--epochs", "2",
                 "--patience", "3", "--set", "training.progress=true", "--threads", "1"]) == 0


def test_resume_names_every_changed_option(interrupted, data, capsys):
    part, argv = interrupted
    state = (part / "state.json").read_bytes()
    err = _error(capsys, ["train", *argv, "--resume", "--out", str(part), "--lr", "0.01",
                          "--optimizer", "sgd", "--embedding-dim", "8",
                          "--data", str(data / "other.tsv")])
    assert err == (
        "crossrank train: error: cannot resume with changed options: "
        f"data.path {data / 'train.tsv'} -> {data / 'other.tsv'}, model.embedding_dim 4 -> 8, "
        "training.lr 0.003 -> 0.01, training.optimizer adam -> sgd (only training.epochs, "
        "training.patience, training.progress, training.threads, training.device, "
        "data.keep_parsed_mb may change); "
        "start a new run (another --out) or replace this one (--overwrite)")
    assert (part / "state.json").read_bytes() == state  # nothing was trained


@pytest.mark.parametrize("flags, named", [
    (["--model", "dnn"], "model.name dcn -> dnn"),
    (["--model-option", "cross.rank=2"], "model.cross.rank 4 -> 2"),
    (["--set", "training.lr_scales.first_order=30"], "training.lr_scales.first_order none -> 30.0"),
    (["--valid-fraction", "0.2"], "training.valid_fraction 0.1 -> 0.2"),
], ids=["family", "model-option", "set-table", "valid-fraction"])
def test_resume_refuses_each_kind_of_change(interrupted, capsys, flags, named):
    part, _ = interrupted
    err = _error(capsys, ["train", "--resume", "--out", str(part), *flags])
    assert f"cannot resume with changed options: {named} (only" in err
