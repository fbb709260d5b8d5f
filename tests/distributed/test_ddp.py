"""Data-parallel training on 2 CPU processes (gloo) equals one process with the same global
batch: same weights, every row once per epoch, metrics over the gathered predictions."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ddp_worker import BLOCK_ROWS, WINDOW_BLOCKS, make_config, make_data, make_model
from launch import run_ranks

from crossrank.data.order import EpochOrder
from crossrank.distributed import (
    DistContext,
    all_gather_1d,
    init_distributed,
    shard_batches,
    shard_bounds,
)
from crossrank.train.loop import Trainer, iter_shares
from tolerances import TOLERANCES

WORKER = Path(__file__).with_name("ddp_worker.py")
WORLD = 2


def _launch(tmp_path: Path, spec: dict) -> list[dict]:
    """Run WORLD ranks of ddp_worker.py as torchrun would; returns each rank's report."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    results = run_ranks(WORKER, [str(spec_path)], world=WORLD, timeout=120)
    failed = [f"rank {r} exited {code}:\n{text}"
              for r, (code, text) in enumerate(results) if code]
    assert not failed, "\n".join(failed)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for r, rep in enumerate(reports):
        # cleanup() ended the group: none of its threads outlives it (they can abort at exit)
        assert not rep["group_threads"], f"rank {r}: {rep['group_threads']}"
        rep["state"] = dict(np.load(tmp_path / f"rank{r}.npz"))
    return reports


def _one_process(tmp_path: Path, spec: dict):
    model = make_model()
    weighted = spec.get("weighted", False)
    result = Trainer(model, make_config(spec), out_dir=tmp_path / "single",
                     verbose=False).fit(make_data(spec["rows"], 0, weighted),
                                        make_data(spec["valid_rows"], 1, weighted))
    return model, result


def _check_against_one_process(tmp_path: Path, spec: dict) -> list[dict]:
    reports = _launch(tmp_path, spec)
    model, result = _one_process(tmp_path, spec)
    rtol, atol = TOLERANCES[torch.float32]
    # DDP all-reduces gradients, so the ranks hold bitwise-identical weights ...
    for name, value in reports[0]["state"].items():
        assert np.array_equal(value, reports[1]["state"][name]), name
    # ... equal to one process's on the same global batches, up to float rounding.
    for name, value in model.state_dict().items():
        torch.testing.assert_close(torch.from_numpy(reports[0]["state"][name]), value,
                                   rtol=rtol, atol=atol, msg=name)
    for rep in reports:
        assert rep["best_epoch"] == result.best_epoch
        assert rep["stopped_early"] == result.stopped_early
        assert len(rep["history"]) == len(result.history)
        for mine, ref in zip(rep["history"], result.history):
            assert mine["train_loss"] == pytest.approx(ref["train_loss"], rel=rtol)
            for key, value in ref["valid"].items():
                assert mine["valid"][key] == pytest.approx(value, rel=rtol, abs=atol), key
    return reports


def _check_rows_once_per_epoch(reports: list[dict], spec: dict) -> None:
    rows, batch = spec["rows"], spec["batch_size"]
    steps_per_epoch = -(-rows // batch)
    epochs = len(reports[0]["history"])
    for rep in reports:
        assert len(rep["steps"]) == steps_per_epoch * epochs
    for epoch in range(epochs):
        # the global order, seed 0 + epoch, whatever the world size
        order = EpochOrder(rows, shuffle=True, seed=epoch, block_rows=BLOCK_ROWS,
                           window_blocks=WINDOW_BLOCKS).to_array()
        trained = []
        for step in range(steps_per_epoch):
            global_batch = order[step * batch:(step + 1) * batch]
            s = epoch * steps_per_epoch + step
            for r, rep in enumerate(reports):
                lo, hi = shard_bounds(len(global_batch), r, WORLD)
                if lo == hi:  # an empty share runs on a stand-in row with weight 0
                    assert rep["steps"][s] == global_batch[:1].tolist()
                else:
                    assert rep["steps"][s] == global_batch[lo:hi].tolist()
                    trained.extend(rep["steps"][s])
        assert sorted(trained) == list(range(rows))  # every row once per epoch


def test_two_processes_equal_one_with_the_global_batch(tmp_path):
    # 45 rows in batches of 8: the last global batch (5 rows) splits 3 + 2 and is weighted
    # exactly as in one process; the validation set (23 rows) splits unevenly too.
    spec = {"rows": 45, "valid_rows": 23, "batch_size": 8, "epochs": 2, "lr": 0.02,
            "optimizer": "adam", "patience": 10}
    reports = _check_against_one_process(tmp_path, spec)
    _check_rows_once_per_epoch(reports, spec)
    rtol, atol = TOLERANCES[torch.float32]
    for rep in reports:
        # metrics over all ranks' gathered predictions equal one process's on the whole set,
        # up to float32 rounding: a row's score can move by an ulp between a share of 3 rows
        # and a batch of 23 (the matmul kernel blocks them differently)
        gathered, local = rep["gathered_metrics"], rep["local_metrics"]
        assert gathered["rows"] == spec["valid_rows"]
        for key, value in local.items():
            assert gathered[key] == pytest.approx(value, rel=rtol, abs=atol), key
        assert rep["all_gather"] == [0.0, 1.0, 10.0, 11.0, 12.0]  # uneven lengths, rank order
    # rank 0 alone writes files
    assert (tmp_path / "run0" / "metrics.jsonl").is_file()
    assert (tmp_path / "run0" / "model.safetensors").is_file()
    assert not (tmp_path / "run1").exists()


def test_two_processes_equal_one_with_row_weights(tmp_path):
    # row weights 0..3: each rank's share weighs W s_r / S (an all-reduce per update), so the
    # update is one process's weighted mean over the global batch; metrics on gathered weights
    spec = {"rows": 45, "valid_rows": 23, "batch_size": 8, "epochs": 2, "lr": 0.02,
            "optimizer": "adam", "patience": 10, "weighted": True}
    reports = _check_against_one_process(tmp_path, spec)
    rtol, atol = TOLERANCES[torch.float32]
    valid = make_data(spec["valid_rows"], 1, True)
    for rep in reports:
        gathered, local = rep["gathered_metrics"], rep["local_metrics"]
        assert gathered["weight_sum"] == float(valid.weight.sum())
        for key, value in local.items():
            assert gathered[key] == pytest.approx(value, rel=rtol, abs=atol), key


def test_empty_share_and_early_stopping_agree_across_ranks(tmp_path):
    # 41 rows in batches of 8: the last global batch has 1 row, rank 1's share is empty.
    # A high SGD learning rate with patience 0 exercises the broadcast stop decision.
    spec = {"rows": 41, "valid_rows": 17, "batch_size": 8, "epochs": 5, "lr": 0.5,
            "optimizer": "sgd", "patience": 0}
    reports = _check_against_one_process(tmp_path, spec)
    # it stops after epoch 2 and restores epoch 1's weights: rank 1, which has no checkpoint
    # to read, holds them too (broadcast from rank 0; compared above)
    assert reports[1]["stopped_early"] and reports[1]["best_epoch"] == 1
    _check_rows_once_per_epoch(reports, spec)
    assert [len(s) for s in reports[1]["steps"][:6]] == [4, 4, 4, 4, 4, 1]  # a stand-in row


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path):
    # Rank 0 alone writes the latest state into the run directory all ranks share; on
    # resume every rank reads it. Interrupted after epoch 1 and resumed to 3 epochs, the two
    # ranks end with the weights of an uninterrupted two-process run, bit for bit, and of one
    # process up to float rounding.
    spec = {"rows": 45, "valid_rows": 23, "batch_size": 8, "epochs": 3, "lr": 0.02,
            "optimizer": "adam", "patience": 10}
    run = tmp_path / "run"
    first = _launch(tmp_path / "first", {**spec, "out_dir": str(run), "stop_after_epochs": 1})
    assert [len(rep["history"]) for rep in first] == [1, 1]
    resumed = _launch(tmp_path / "resumed", {**spec, "out_dir": str(run), "resume": True})
    whole = _launch(tmp_path / "whole", spec)
    for rep in resumed:
        assert [h["epoch"] for h in rep["history"]] == [1, 2, 3]
        assert len(rep["steps"]) == 2 * -(-spec["rows"] // spec["batch_size"])  # epochs 2, 3
        for name, value in whole[0]["state"].items():
            assert np.array_equal(rep["state"][name], value), name
        for mine, ref in zip(rep["history"], whole[0]["history"]):
            assert mine["train_loss"] == ref["train_loss"]
    model, result = _one_process(tmp_path, spec)
    rtol, atol = TOLERANCES[torch.float32]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(torch.from_numpy(resumed[1]["state"][name]), value,
                                   rtol=rtol, atol=atol, msg=name)
    assert resumed[0]["best_epoch"] == result.best_epoch
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_resume_fails_on_every_rank_when_a_rank_cannot_read_the_state(tmp_path):
    # Per-rank run directories stand for a file system the ranks do not share: only rank 0's
    # holds the state. Both ranks must stop with the reason instead of hanging.
    spec = {"rows": 20, "valid_rows": 9, "batch_size": 8, "epochs": 2, "lr": 0.02,
            "optimizer": "adam", "patience": 10}
    _launch(tmp_path, {**spec, "stop_after_epochs": 1})
    with pytest.raises(AssertionError) as failure:
        _launch(tmp_path, {**spec, "resume": True})
    text = str(failure.value)
    assert "rank 0 exited" in text and "rank 1 exited" in text
    assert text.count("cannot resume: 1 of 2 ranks") == 2
    assert "rank 1: " in text and "nothing to resume" in text


def test_shards_cover_every_row_once():
    for n in range(0, 12):
        for world in (1, 2, 3, 5):
            bounds = [shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1
    batches = [(torch.arange(5), torch.arange(5) * 2, None), (torch.arange(5, 6), None, None)]
    (w, (a, b, c)), (w_empty, (d, _, _)) = shard_batches(batches, rank=1, world_size=2)
    assert w == 2 * 2 / 5 and a.tolist() == [3, 4] and b.tolist() == [6, 8] and c is None
    assert w_empty == 0.0 and d.tolist() == [5]  # stand-in row of an empty share
    with pytest.raises(ValueError, match="rank"):
        shard_bounds(4, 2, 2)


def test_sources_without_a_per_rank_reader_get_the_same_shares():
    class WholeBatches:  # only iter_batches: the loop cuts shares from whole global batches
        def __init__(self, data):
            self.data = data

        def __len__(self):
            return len(self.data)

        def iter_batches(self, batch_size, *, shuffle, seed):
            return self.data.iter_batches(batch_size, shuffle=shuffle, seed=seed)

    data = make_data(41, 0)
    for rank in range(WORLD):
        kwargs = {"shuffle": True, "seed": 3, "rank": rank, "world_size": WORLD}
        fallback = list(iter_shares(WholeBatches(data), 8, **kwargs))
        direct = list(iter_shares(data, 8, **kwargs))
        assert [w for w, _ in fallback] == [w for w, _ in direct]
        for (_, a), (_, b) in zip(fallback, direct):
            assert all(x is y is None or torch.equal(x, y) for x, y in zip(a, b))


def test_single_process_fallbacks(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed()
    assert ctx.rank == 0 and ctx.world_size == 1 and ctx.is_main and not ctx.is_distributed
    assert all_gather_1d(np.array([1.0, 2.0])).tolist() == [1.0, 2.0]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ValueError, match="MASTER_PORT"):
        init_distributed()
    assert DistContext(rank=1, world_size=2).is_main is False
