"""The serving benchmark's anchor, measured in the same run: a plain PyTorch DCN-V2.

Issue #14's ONNX target is an anchor: the benchmark's model shape written as a plain PyTorch
module (one embedding table for all fields, ``nn.Linear`` layers, no crossrank code) and
exported with ``torch.onnx.export(dynamo=True)``, then run by ONNX Runtime on 1 thread. A
figure quoted from another session's machine says little about this one (the CPU model
changes between sessions), so :func:`compare` times the anchor and crossrank's own
``model.onnx`` here, alternating, and the benchmark prints both and their ratio.

Shape (as ``bench_serving.build``): 13 dense, 26 fields of 100,000 ids, D=16, stacked
DCN-V2 with 3 low-rank (64) cross layers ``x0 * (V (U x) + b) + x``, deep 512-256 (ReLU),
one logit, sigmoid.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

FIELDS, IDS, DIM, DENSE, RANK, LAYERS = 26, 100_000, 16, 13, 64, 3


class PlainDCN(nn.Module):
    """The anchor model. Inputs: dense (B, 13) float32, ids (B, 26) int64 in [0, 100,000)."""

    def __init__(self) -> None:
        super().__init__()
        width = DENSE + FIELDS * DIM
        self.embedding = nn.Embedding(FIELDS * IDS, DIM)
        self.register_buffer("offsets", torch.arange(FIELDS) * IDS)
        self.u = nn.ModuleList(nn.Linear(width, RANK, bias=False) for _ in range(LAYERS))
        self.v = nn.ModuleList(nn.Linear(RANK, width) for _ in range(LAYERS))
        self.deep = nn.Sequential(nn.Linear(width, 512), nn.ReLU(), nn.Linear(512, 256),
                                  nn.ReLU(), nn.Linear(256, 1))

    def forward(self, dense: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(ids + self.offsets).flatten(1)  # (B, 26 * 16)
        x0 = x = torch.cat([dense, emb], dim=1)  # (B, 429)
        for u, v in zip(self.u, self.v, strict=True):
            x = x0 * v(u(x)) + x
        return torch.sigmoid(self.deep(x).squeeze(1))  # (B,)


def export_anchor(out: Path) -> Path:
    """``out/anchor.onnx``, exported the way crossrank exports (dynamo, dynamic batch)."""
    torch.manual_seed(0)
    model = PlainDCN().eval()
    example = (torch.rand(8, DENSE), torch.randint(0, IDS, (8, FIELDS)))
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, example, dynamo=True, input_names=["dense", "ids"],
                                    output_names=["score"],
                                    dynamic_shapes=({0: batch}, {0: batch}), verbose=False)
    path = out / "anchor.onnx"
    assert program is not None
    program.save(str(path))
    return path


def _session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feeds(session, rows: int, seed: int) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    out = {}
    for spec in session.get_inputs():
        if spec.name == "dense":
            out[spec.name] = rng.random((rows, DENSE), dtype=np.float32)
        else:  # crossrank's ids include the missing id 0; both read them as plain indices
            out[spec.name] = rng.integers(0, IDS, (rows, spec.shape[1]), dtype=np.int64)
    return out


def _p50_ms(session, feeds: dict[str, np.ndarray], calls: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(50):
        session.run(None, feeds)
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        session.run(None, feeds)
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e3)


def _rows_per_s(session, feeds: dict[str, np.ndarray], seconds: float) -> float:  # type: ignore[no-untyped-def]
    rows = len(next(iter(feeds.values())))
    session.run(None, feeds)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done < 3:
        session.run(None, feeds)
        done += 1
    return rows * done / (time.perf_counter() - start)


def compare(crossrank_onnx: Path, *, rounds: int = 3, calls: int = 1000,
            batch: int = 4096) -> list[list[str]]:
    """Table rows: anchor and crossrank ONNX, batch-1 p50 and batch rows/s, alternating
    ``rounds`` times (median of the rounds), and crossrank's ratio to the anchor."""
    with tempfile.TemporaryDirectory() as tmp:
        anchor = _session(export_anchor(Path(tmp)))
    ours = _session(crossrank_onnx)
    figures: dict[str, list[tuple[float, float]]] = {"anchor": [], "crossrank": []}
    for _ in range(rounds):
        for name, session in (("anchor", anchor), ("crossrank", ours)):
            p50 = _p50_ms(session, _feeds(session, 1, 1), calls)
            rate = _rows_per_s(session, _feeds(session, batch, 2), 2.0)
            figures[name].append((p50, rate))
    med = {k: (float(np.median([f[0] for f in v])), float(np.median([f[1] for f in v])))
           for k, v in figures.items()}
    label = {"anchor": "anchor: plain PyTorch DCN-V2 -> ONNX Runtime",
             "crossrank": "crossrank model.onnx -> ONNX Runtime"}
    rows = [[f"same run, {rounds} alternating rounds, median: {label[k]}", f"{p50:.3f}", "",
             f"{rate:,.0f}"] for k, (p50, rate) in med.items()]
    ratio = med["crossrank"][1] / med["anchor"][1]
    rows.append([f"crossrank / anchor (rows/s at {batch:,}; per round: "
                 + ", ".join(f"{c[1] / a[1]:.2f}" for a, c in zip(figures["anchor"],
                                                                  figures["crossrank"],
                                                                  strict=True)) + ")",
                 f"{med['crossrank'][0] / med['anchor'][0]:.2f}x", "", f"{ratio:.2f}x"])
    return rows
