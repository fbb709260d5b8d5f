"""One rank of test_sparse_gradients.py, launched as torchrun would launch it.

Usage: python sparse_gradient_worker.py OUT_DIR. Builds the test's tables with a seed of its
own rank (so only :func:`leave_out_of_ddp`'s broadcast can make them equal), wraps them in
DDP, runs the rank's lookups (:func:`lookups`), averages the sparse gradients and writes
OUT_DIR/rank{r}.npz: each table's weights after the broadcast and its averaged gradient
(dense), or no entry for a table left without a gradient.
"""

import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crossrank.distributed import cleanup, init_distributed
from crossrank.distributed.sparse_gradients import SparseGradientAverager, leave_out_of_ddp


class Tables(nn.Module):
    """Sparse tables of widths 3 and 1, one only rank 0 looks up, one nobody does; a dense
    table and a linear layer, which DDP keeps. The forward pass is a loss whose gradient
    differs by row and by rank (powers and rank-dependent weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.t = nn.ModuleDict({
            "wide": nn.Embedding(7, 3, sparse=True), "narrow": nn.Embedding(5, 1, sparse=True),
            "rank0_only": nn.Embedding(4, 2, sparse=True),
            "unused": nn.Embedding(3, 2, sparse=True),
            "dense_table": nn.Embedding(6, 2), "linear": nn.Linear(3, 1)})

    def forward(self, ids: dict[str, torch.Tensor], rank: int) -> torch.Tensor:
        t, w = self.t, 1.0 + rank
        loss = (t["linear"](t["wide"](ids["wide"])) ** 2).sum() * w
        loss = loss + (t["narrow"](ids["narrow"]) ** 3).sum()
        loss = loss + t["dense_table"](ids["dense_table"]).pow(2).sum() * w
        if "rank0_only" in ids:
            loss = loss + t["rank0_only"](ids["rank0_only"]).sin().sum()
        return loss


def build_tables() -> Tables:
    return Tables().double()


def lookups(rank: int) -> dict[str, torch.Tensor]:
    """Rank ``rank``'s ids per table (repeats included; rank 1 has more wide rows)."""
    g = torch.Generator().manual_seed(50 + rank)
    ids = {"wide": torch.randint(0, 7, (5 + 4 * rank,), generator=g),
           "narrow": torch.randint(0, 5, (6,), generator=g),
           "dense_table": torch.randint(0, 6, (4,), generator=g)}
    if rank == 0:
        ids["rank0_only"] = torch.tensor([1, 1, 3])
    return ids


def main(out: str) -> None:
    ctx = init_distributed("gloo")
    torch.manual_seed(ctx.rank)  # different weights on each rank until the broadcast
    tables = build_tables()
    averager = SparseGradientAverager(leave_out_of_ddp(tables))
    ddp = nn.parallel.DistributedDataParallel(tables)
    ddp(lookups(ctx.rank), ctx.rank).backward()
    averager.average()
    arrays = {}
    for name, module in tables.t.items():
        for pname, p in module.named_parameters():
            arrays[f"{name}.{pname}"] = p.detach().numpy()
            if p.grad is not None:
                grad = p.grad.to_dense() if p.grad.is_sparse else p.grad
                arrays[f"{name}.{pname}.grad"] = grad.numpy()
    np.savez(Path(out) / f"rank{os.environ['RANK']}.npz", **arrays)
    del ddp
    cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
