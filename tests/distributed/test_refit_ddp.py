"""training.refit under DDP: every rank refits for the epochs the first pass agreed on, rank 0
writes the model, and it equals a two-rank run on every row for those epochs."""

from __future__ import annotations

import json
from pathlib import Path

from launch import run_ranks, transcript
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("train_worker.py")
ARGS = ["--synthetic-rows", "2000", "--batch-size", "256", "--embedding-dim", "4",
        "--model-option", "cross.rank=2", "--model-option", "deep_layers=[8]", "--lr", "3e-3",
        "--threads", "1", "--no-progress", "--seed", "1"]


def _ranks(tmp_path: Path, name: str, argv: list[str]) -> None:
    reports = tmp_path / f"reports-{name}"
    reports.mkdir()
    results = run_ranks(WORKER, [str(reports), *argv], timeout=180)
    assert [code for code, _ in results] == [0, 0], transcript(results)


def test_two_ranks_refit_as_two_ranks_train_on_every_row(tmp_path):
    out = tmp_path / "refit"
    _ranks(tmp_path, "refit", ["--out", str(out), "--epochs", "3", "--patience", "0",
                               *ARGS])
    meta = json.loads((out / "model.json").read_text())
    epochs = meta["refit"]["epochs"]
    assert meta["world_size"] == 2 and meta["metrics"] == {} and epochs >= 1
    first = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == min(first, key=lambda r: r["valid"]["logloss"])["epoch"]
    direct = tmp_path / "direct"
    _ranks(tmp_path, "direct", ["--out", str(direct), "--valid-fraction", "0", "--epochs",
                                str(epochs), "--patience", str(epochs), *ARGS])
    a, b = load_file(str(out / "model.safetensors")), load_file(str(direct / "latest.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
