"""CPU training speed of DLRM-DCN (the issue's TorchRec comparison shape), samples/s.

DLRM with a 3-layer low-rank (r=64) cross interaction, D=16, 26 tables of 100,000 rows,
bottom MLP 512-256-16, top 512-256-1, batch 2048, 2 threads, Criteo-shaped random data.
Peers' published numbers on this shape (2 cores): TorchRec DLRM_DCN 15,100 samples/s with
FBGEMM's fused embedding optimizer, 4,800 without; DeepCTR-Torch DCN 4,700.

Run: crossrank bench, or .venv/bin/python benchmarks/bench_train_cpu.py
"""

from __future__ import annotations

import time

import torch

from crossrank.models import FeatureSchema, build_model, loss_fn
from crossrank.train.optim import build_optimizer

PEERS = [("TorchRec DLRM_DCN + FBGEMM fused optimizer (published)", 15_100),
         ("TorchRec DLRM_DCN, unfused (published)", 4_800),
         ("DeepCTR-Torch DCN (published)", 4_700)]


def make_model(sparse_gradients: bool):
    schema = FeatureSchema(dense=tuple(f"I{i}" for i in range(1, 14)),
                           categorical=tuple(f"C{i}" for i in range(1, 27)),
                           vocab_sizes=(100_000,) * 26, embedding_dim=16)
    return build_model("dlrm", schema, {
        "bottom_layers": [512, 256, 16], "top_layers": [512, 256], "interaction": "dcn",
        "cross": {"num_layers": 3, "rank": 64}, "sparse_gradients": sparse_gradients})


def measure(model, *, batch: int, steps: int, warmup: int = 5) -> float:
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(batch, 13, generator=g),
                torch.randint(0, 100_000, (batch, 26), generator=g),
                torch.randint(0, 2, (batch,), generator=g).float()) for _ in range(8)]
    opt = build_optimizer(model, "adam", 1e-3)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        dense, sparse, label = batches[i % len(batches)]
        loss = loss_fn("binary", model(dense, sparse), label)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


def matmul_macs_per_sample(model: torch.nn.Module) -> int:
    """Multiply-adds per sample in the dense part: every weight matrix is used once per row."""
    return sum(p.numel() for name, p in model.named_parameters()
               if p.dim() >= 2 and "embedding" not in name)


def run_training_benchmark(*, steps: int = 30, batch: int = 2048, threads: int = 2) -> str:
    """Measure crossrank with sparse and dense embedding updates; return the table as text."""
    torch.set_num_threads(threads)
    rows = []
    for label, sparse in (("crossrank, sparse embedding updates (SparseAdam)", True),
                          ("crossrank, dense embedding updates (Adam)", False)):
        torch.manual_seed(0)
        rows.append((label, measure(make_model(sparse), batch=batch, steps=steps)))
    ours = rows[0][1]
    lines = [f"DLRM-DCN training, batch {batch}, {threads} threads, torch {torch.__version__}",
             f"{'implementation':<58} {'samples/s':>10} {'crossrank / it':>15}"]
    for label, sps in rows + PEERS:
        lines.append(f"{label:<58} {sps:>10,.0f} {ours / sps:>15.2f}x")
    flops = 6 * matmul_macs_per_sample(make_model(True))  # forward 2, backward 4 per MAC
    lines.append(f"model cost {flops / 1e6:.2f} MFLOP/sample (forward + backward); crossrank "
                 f"sustains {ours * flops / 1e9:.0f} GFLOP/s (the issue's estimate of these cores: "
                 "~90 GFLOP/s on a 2048x512x512 product, ~22,000 samples/s)")
    return "\n".join(lines)
