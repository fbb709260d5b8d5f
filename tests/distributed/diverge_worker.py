"""One rank of a data-parallel run on rows of which one overflows, launched by
test_ddp_divergence.py as torchrun would launch it.

Usage: python diverge_worker.py SPEC.json; writes rank{r}.json (the error's message, or the
run's skipped updates) and rank{r}.npz (the weights it ends with) beside the spec.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from crossrank.data import EncodedDataset
from crossrank.errors import DivergedError
from crossrank.models import FeatureSchema, build_model
from crossrank.train.config import TrainConfig

SCHEMA = FeatureSchema(dense=("x", "z"), categorical=("u",), vocab_sizes=(10,), embedding_dim=4)
POISON = 1e20  # finite in float32; its square, in the MSE, is not


def make_data(rows: int, seed: int, poison: int | None) -> EncodedDataset:
    rng = np.random.default_rng(seed)
    dense = rng.random((rows, 2)).astype(np.float32)
    sparse = rng.integers(0, 10, (rows, 1))
    label = (3 * dense[:, 0] - 2 * dense[:, 1] + (sparse[:, 0] % 2)).astype(np.float32)
    if poison is not None:
        dense[poison, 0] = POISON
    return EncodedDataset.from_arrays(dense, sparse, label)


def make_model():
    torch.manual_seed(0)
    # the defaults before 2026-12-01, which these runs were written for
    return build_model("dcn", SCHEMA, {"deep_layers": [8], "cross.rank": 2, "cross.num_layers": 3,
                                       "dropout": 0.0, "embedding_l2": 0.0,
                                       "sparse_gradients": False}, task="regression")


def make_config(spec: dict) -> TrainConfig:
    return TrainConfig(batch_size=spec["batch_size"], epochs=spec["epochs"], lr=spec["lr"],
                       on_nonfinite=spec["on_nonfinite"], patience=10, progress=False)


def run(spec: dict, out_dir: Path) -> dict:
    """Train as the spec says; the report (error or skipped updates) and the model."""
    from crossrank.train.loop import Trainer

    model = make_model()
    train = make_data(spec["rows"], 0, spec["poison"])
    valid = make_data(spec["valid_rows"], 1, None)
    try:
        result = Trainer(model, make_config(spec), out_dir=out_dir, verbose=False).fit(
            train, valid)
        report = {"skipped": result.skipped_steps,
                  "per_epoch": [h["skipped_steps"] for h in result.history]}
    except DivergedError as err:
        report = {"error": str(err)}
    return {**report, "state": {k: v.numpy() for k, v in model.state_dict().items()}}


def main(spec_path: str) -> None:
    from crossrank.distributed import cleanup, init_distributed

    torch.set_num_threads(1)
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec_path).parent
    ctx = init_distributed()
    try:
        report = run(spec, out / f"run{ctx.rank}")
        np.savez(out / f"rank{ctx.rank}.npz", **report.pop("state"))
        (out / f"rank{ctx.rank}.json").write_text(json.dumps(report))
    finally:
        cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
