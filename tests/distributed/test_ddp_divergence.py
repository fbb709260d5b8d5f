"""Under DDP every rank takes the same decision on a NaN or infinite loss, though only one
rank's share holds the row that overflows: the gradients after DDP's all-reduce decide, so
the ranks stop (or skip) at the same update as one process does, and never hang."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diverge_worker import run
from launch import run_ranks

from tolerances import TOLERANCES

WORKER = Path(__file__).with_name("diverge_worker.py")
WORLD = 2
# 96 rows in global batches of 16 (8 a rank); row 37 overflows, in one rank's share only
SPEC = {"rows": 96, "valid_rows": 20, "batch_size": 16, "epochs": 2, "lr": 0.01,
        "poison": 37}


def _launch(tmp_path: Path, spec: dict) -> list[dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    results = run_ranks(WORKER, [str(tmp_path / "spec.json")], world=WORLD, timeout=120)
    failed = [f"rank {r} exited {code}:\n{text}" for r, (code, text) in enumerate(results)
              if code]
    assert not failed, "\n".join(failed)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for r, rep in enumerate(reports):
        rep["state"] = dict(np.load(tmp_path / f"rank{r}.npz"))
    return reports


def _where(message: str) -> str:
    """'training diverged in epoch E, update U of N' (what follows differs by rank: only one
    of them met the row)."""
    return message.split(":", 1)[0]


def test_every_rank_stops_at_the_update_one_process_stops_at(tmp_path):
    spec = {**SPEC, "on_nonfinite": "stop"}
    reports = _launch(tmp_path / "ddp", spec)
    single = run(spec, tmp_path / "single")
    assert _where(single["error"]).startswith("training diverged in epoch 1, update ")
    assert [_where(rep["error"]) for rep in reports] == [_where(single["error"])] * WORLD
    # the rank whose share holds the row names its loss; the other, the gradient it received
    whys = sorted(rep["error"].split(": ", 1)[1] for rep in reports)
    assert whys[0].startswith("the gradient is not finite (this rank's loss is ")
    assert whys[1].startswith("the loss is ")
    for rep in reports:
        assert "no model was written" in rep["error"]
    assert not (tmp_path / "ddp" / "run0" / "model.safetensors").exists()


def test_every_rank_skips_the_same_update_and_ends_with_one_process_weights(tmp_path):
    spec = {**SPEC, "on_nonfinite": "skip"}
    reports = _launch(tmp_path / "ddp", spec)
    single = run(spec, tmp_path / "single")
    assert single["per_epoch"] == [1, 1]
    for rep in reports:
        assert "error" not in rep, rep.get("error")
        assert rep["per_epoch"] == single["per_epoch"]
    for name, value in reports[0]["state"].items():  # bitwise: the same updates on each rank
        assert np.array_equal(value, reports[1]["state"][name]), name
    rtol, atol = TOLERANCES[torch.float32]
    for name, value in single["state"].items():
        torch.testing.assert_close(torch.from_numpy(reports[0]["state"][name]),
                                   torch.from_numpy(value), rtol=rtol, atol=atol, msg=name)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
