"""Training throughput (`crossrank bench`): samples/s of the training step on the CPU.

What is timed is :class:`~crossrank.train.step.TrainStep`, the update the Trainer makes per
batch (regularization, clipping and schedule included), on DLRM with a 3-layer low-rank
(r=64) cross interaction, D=16, 26 tables of 100,000 rows, bottom MLP 512-256-16, top
512-256-1, on Criteo-shaped random batches; and the same model with one more field, a
multi-valued one of 100,000 ids (sum pooling, lengths uniform on 0..40, 20 on average, padded
to 40). Only figures measured by this run are printed;
other libraries' numbers on this shape, measured elsewhere, are quoted in
``benchmarks/bench_train_cpu.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor

from crossrank.models import FeatureSchema, build_model
from crossrank.models.base import RankingModel
from crossrank.train.config import TrainConfig
from crossrank.train.step import TrainStep

NUM_DENSE, NUM_FIELDS, VOCAB = 13, 26, 100_000
HISTORY_WIDTH = 40  # the multi-valued case: lengths uniform on 0..40


def make_model(sparse_gradients: bool, *, multi_valued: bool = False) -> RankingModel:
    """The benchmark's DLRM-DCN (weights from torch's global RNG), with one multi-valued field
    of :data:`VOCAB` ids after the 26 when asked."""
    m = 1 if multi_valued else 0
    schema = FeatureSchema(dense=tuple(f"I{i}" for i in range(1, NUM_DENSE + 1)),
                           categorical=tuple(f"C{i}" for i in range(1, NUM_FIELDS + 1)),
                           vocab_sizes=(VOCAB,) * NUM_FIELDS, embedding_dim=16,
                           multi_valued=("history",) * m, multi_valued_sizes=(VOCAB,) * m,
                           multi_valued_widths=(HISTORY_WIDTH,) * m, pooling=("sum",) * m)
    return build_model("dlrm", schema, {
        "bottom_layers": [512, 256, 16], "top_layers": [512, 256], "interaction": "dcn",
        "cross": {"num_layers": 3, "rank": 64}, "sparse_gradients": sparse_gradients})


def synthetic_batches(batch: int, *, count: int = 8, seed: int = 0, multi_valued: bool = False
                      ) -> list[tuple[Tensor, Tensor, Tensor]]:
    """``count`` Criteo-shaped random batches. Shape: (B, 13), (B, 26) int64 (with the
    multi-valued field's padded ids after them: (B, 26 + 40)), (B,) in {0, 1}."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        dense = torch.rand(batch, NUM_DENSE, generator=g)
        ids = torch.randint(0, VOCAB, (batch, NUM_FIELDS), generator=g)
        if multi_valued:
            history = torch.randint(0, VOCAB, (batch, HISTORY_WIDTH), generator=g)
            length = torch.randint(0, HISTORY_WIDTH + 1, (batch, 1), generator=g)
            history[torch.arange(HISTORY_WIDTH).expand(batch, -1) >= length] = -1  # padding
            ids = torch.cat([ids, history], dim=1)  # (B, 26 + 40)
        out.append((dense, ids, torch.randint(0, 2, (batch,), generator=g).float()))
    return out


def measure(model: RankingModel, batches: Sequence[tuple[Tensor, Tensor | None, Tensor]], *,
            config: TrainConfig, steps: int, warmup: int = 5) -> float:
    """Samples/s of ``steps`` training steps (after ``warmup`` untimed ones) cycling through
    ``batches``: update i is TrainStep's update i of ``warmup + steps``, as in the Trainer.

    Example:
        >>> from crossrank.models import DCN, DCNConfig, FeatureSchema
        >>> m = DCN(FeatureSchema(dense=("x",)), DCNConfig(), task="regression")
        >>> x = torch.rand(4, 1)
        >>> measure(m, [(x, None, x[:, 0])], config=TrainConfig(), steps=2, warmup=1) > 0
        True
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    train_step = TrainStep(model, config)
    total = warmup + steps
    rows = 0
    model.train()
    start = time.perf_counter()
    for i in range(total):
        if i == warmup:
            start, rows = time.perf_counter(), 0
        dense, sparse, label = batches[i % len(batches)][:3]  # a row-weight entry is unused
        train_step(dense, sparse, label, step=i, total_steps=total)
        rows += label.shape[0]
    return rows / (time.perf_counter() - start)


def matmul_macs_per_sample(model: torch.nn.Module) -> int:
    """Multiply-adds per sample in the dense part: every weight matrix is used once per row."""
    return sum(p.numel() for name, p in model.named_parameters()
               if p.dim() >= 2 and "embedding" not in name)


def matmul_gflops(batch: int = 2048, *, repeats: int = 7,
                  dtype: torch.dtype = torch.float32) -> float:
    """The measured rate of a (batch x 512) @ (512 x 512) product in ``dtype``, best of
    ``repeats`` x 20 calls: the machine's attainable rate for this model's layers."""
    a, b = torch.randn(batch, 512, dtype=dtype), torch.randn(512, 512, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(20):
            a @ b
        best = min(best, (time.perf_counter() - start) / 20)
    return 2 * batch * 512 * 512 / best / 1e9


def run_training_benchmark(*, steps: int = 30, batch: int = 2048, threads: int = 2) -> str:
    """Measure the training step with sparse and dense embedding updates; the table as text."""
    torch.set_num_threads(threads)
    config = TrainConfig(optimizer="adam", lr=1e-3, batch_size=batch, threads=threads)
    rows = []
    for label, sparse, lists in (("sparse embedding updates (SparseAdam)", True, False),
                                 ("dense embedding updates (Adam)", False, False),
                                 ("sparse, + 1 multi-valued field (avg 20)", True, True)):
        torch.manual_seed(0)
        batches = synthetic_batches(batch, multi_valued=lists)
        rows.append((label, measure(make_model(sparse, multi_valued=lists), batches,
                                    config=config, steps=steps)))
    lines = [f"crossrank DLRM-DCN training step, batch {batch}, {threads} threads, "
             f"{steps} timed steps, torch {torch.__version__}",
             f"{'embedding updates':<40} {'samples/s':>10}"]
    for label, sps in rows:
        lines.append(f"{label:<40} {sps:>10,.0f}")
    flops = 6 * matmul_macs_per_sample(make_model(True))  # forward 2, backward 4 per MAC
    lines.append(f"model cost {flops / 1e6:.2f} MFLOP/sample (forward + backward); sustained "
                 f"{rows[0][1] * flops / 1e9:.0f} GFLOP/s with sparse updates, "
                 f"{rows[0][1] / rows[1][1]:.2f}x the dense updates' samples/s; the "
                 f"multi-valued field keeps {rows[2][1] / rows[0][1]:.2f}x the one-hot samples/s")
    gflops = matmul_gflops(batch)
    ceiling = gflops * 1e9 / flops
    lines.append(f"a {batch}x512x512 float32 product runs at {gflops:.0f} GFLOP/s here: ceiling "
                 f"{ceiling:,.0f} samples/s, of which sparse updates reach "
                 f"{rows[0][1] / ceiling:.0%} (peers in the same run: "
                 "benchmarks/bench_train_cpu.py)")
    return "\n".join(lines)
