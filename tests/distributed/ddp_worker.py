"""One rank of a data-parallel run, launched by test_ddp.py as torchrun would launch it
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment).

Usage: python ddp_worker.py SPEC.json; writes rank{r}.npz and rank{r}.json beside the spec
(rank{r}.json after leaving the process group, with the names of its threads still alive).
Optional spec keys: "out_dir" (one run directory for all ranks), "resume",
"stop_after_epochs".
The data, model and config builders are shared with the one-process reference in the test.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from launch import group_threads

from crossrank.data import EncodedDataset
from crossrank.models import FeatureSchema, build_model
from crossrank.train.config import TrainConfig

BLOCK_ROWS, WINDOW_BLOCKS = 4, 3
SCHEMA = FeatureSchema(dense=("row", "x"), categorical=("u", "v"), vocab_sizes=(20, 30), embedding_dim=4)


def make_data(rows: int, seed: int, weighted: bool = False) -> EncodedDataset:
    """Dense column 0 is the row's position (exact in float32), so a model can report what it saw;
    ``weighted``: row weights 0..3."""
    rng = np.random.default_rng(seed)
    sparse = np.stack([rng.integers(0, 20, rows), rng.integers(0, 30, rows)], 1)
    dense = np.stack([np.arange(rows) / 64.0, rng.random(rows)], 1).astype(np.float32)
    logit = 3.0 * (sparse[:, 0] % 2 == sparse[:, 1] % 2) - 1.5 + dense[:, 1]
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    weight = rng.integers(0, 4, rows).astype(np.float32) if weighted else None
    # 12-row shuffle windows: batches straddle windows, as they do on large data
    return EncodedDataset.from_arrays(dense, sparse, label, weight=weight).with_window_shuffle(
        block_rows=BLOCK_ROWS, window_blocks=WINDOW_BLOCKS)


def make_model():
    torch.manual_seed(0)
    # dropout 0: its masks differ between one process and two; the embedding rows' L2 is on
    # (scaled by each rank's share of the batch, it adds up to one process's penalty)
    return build_model("dcn", SCHEMA, {"deep_layers": [8], "cross.rank": 2, "dropout": 0.0,
                                       "embedding_l2": 0.05, "sparse_gradients": True})


def make_config(spec: dict) -> TrainConfig:
    return TrainConfig(batch_size=spec["batch_size"], epochs=spec["epochs"], lr=spec["lr"],
                       optimizer=spec["optimizer"], patience=spec["patience"], progress=False)


def record_rows(model) -> list[list[int]]:
    """Row positions of every training forward pass (one list per step)."""
    steps: list[list[int]] = []

    def hook(module, args):
        if module.training:
            steps.append([round(float(v) * 64) for v in args[0][:, 0]])

    model.register_forward_pre_hook(hook)
    return steps


def main(spec_path: str) -> None:
    from crossrank.distributed import all_gather_1d, cleanup, init_distributed
    from crossrank.train.loop import Trainer, evaluate

    torch.set_num_threads(1)
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec_path).parent
    ctx = init_distributed()
    try:
        weighted = spec.get("weighted", False)
        train, valid = make_data(spec["rows"], 0, weighted), make_data(spec["valid_rows"], 1,
                                                                       weighted)
        model = make_model()
        steps = record_rows(model)
        # "out_dir": one directory for all ranks (as a shared file system), for resume
        run_dir = Path(spec["out_dir"]) if "out_dir" in spec else out / f"run{ctx.rank}"
        result = Trainer(model, make_config(spec), out_dir=run_dir, verbose=False).fit(
            train, valid, resume=spec.get("resume", False),
            stop_after_epochs=spec.get("stop_after_epochs"))
        gathered = all_gather_1d(np.arange(ctx.rank + 2, dtype=np.float64) + 10 * ctx.rank)
        report = {
            "rank": ctx.rank, "world_size": ctx.world_size, "steps": steps,
            "history": result.history, "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "gathered_metrics": evaluate(model, valid, batch_size=5, world=ctx),
            "local_metrics": evaluate(model, valid),
            "all_gather": gathered.tolist(),
        }
        np.savez(out / f"rank{ctx.rank}.npz",
                 **{k: v.numpy() for k, v in model.state_dict().items()})
    finally:
        cleanup()
    report["group_threads"] = group_threads()
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
