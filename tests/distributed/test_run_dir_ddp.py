"""Under DDP rank 0 holds the run directory's lock for all ranks, which share the directory:
two ranks train into one --out, and a directory another training holds stops every rank
(none is left waiting for rank 0)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from launch import run_ranks, transcript

from crossrank.pipeline.run_dir import LOCK_FILE, RunDirLock

WORKER = Path(__file__).with_name("train_worker.py")
ARGS = ["--synthetic-rows", "1500", "--epochs", "1", "--batch-size", "256", "--embedding-dim",
        "4", "--model-option", "cross.rank=2", "--model-option", "deep_layers=[8]",
        "--threads", "1", "--no-progress", "--no-refit"]  # the refit under DDP: test_refit_ddp.py


def _ranks(tmp_path: Path, name: str, argv: list[str]) -> list[tuple[int, str]]:
    reports = tmp_path / f"reports-{name}"
    reports.mkdir()
    return run_ranks(WORKER, [str(reports), *argv], timeout=120)


def test_ranks_share_the_directory_rank_0_holds(tmp_path):
    out = tmp_path / "ddp"
    results = _ranks(tmp_path, "ok", ["--out", str(out), *ARGS])
    assert [code for code, _ in results] == [0, 0], transcript(results)
    assert json.loads((out / "model.json").read_text())["world_size"] == 2
    assert not (out / LOCK_FILE).exists()


def test_a_locked_directory_stops_every_rank(tmp_path):
    out = tmp_path / "ddp"
    with RunDirLock(out):
        results = _ranks(tmp_path, "locked", ["--out", str(out), *ARGS])  # within the timeout
    assert all(code != 0 for code, _ in results), transcript(results)
    rank0 = results[0][1].strip().splitlines()[-1]
    assert rank0.startswith(f"crossrank train: error: {out}: another training is writing into "
                            f"this directory (pid {os.getpid()} on ")
    assert f"another training is writing into this directory (pid {os.getpid()}" in results[1][1]
    assert not (out / "model.json").exists()
