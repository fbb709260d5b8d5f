"""The reliability diagram PNG of ``crossrank evaluate --plots DIR`` (matplotlib, Agg: files
only, never a window)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from crossrank.safe_io import atomic_write_bytes
from crossrank.train.calibration import ReliabilityBins

DPI = 100


def plot_reliability(bins: ReliabilityBins, path: str | Path, *, title: str,
                     calibration: float, dpi: int = DPI) -> Path:
    """Write the reliability diagram of ``bins`` to the PNG ``path`` (written whole or not at
    all): observed against mean predicted rate per equal-count bin beside the diagonal of a
    calibrated model, and below, the rows in each bin (with its mean prediction).

    Example:
        >>> import tempfile, numpy as np
        >>> from crossrank.train.calibration import reliability_bins
        >>> b = reliability_bins(np.linspace(0, 1, 50), np.arange(50) % 2, bins=5)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     plot_reliability(b, Path(d) / "r.png", title="t", calibration=1.0
        ...                      ).stat().st_size > 1000
        True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 7.4), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1))
    high = min(1.0, max(float(bins.predicted.max()), float(bins.observed.max()), 1e-3) * 1.1)
    top.plot([0, high], [0, high], color="0.6", linestyle="--", linewidth=1,
             label="calibrated (observed = predicted)")
    top.plot(bins.predicted, bins.observed, marker="o", color="C0", linewidth=1.5,
             label="model: one point per bin")
    top.set_xlim(0, high)
    top.set_ylim(0, high)
    top.set_aspect("equal")
    top.set_xlabel("mean predicted probability in the bin")
    top.set_ylabel("observed event rate in the bin")
    top.set_title(f"{title}\nreliability, {len(bins.rows)} equal-count bins; "
                  f"calibration (sum p / sum y) = {calibration:.4f}", fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    number = np.arange(1, len(bins.rows) + 1)
    bottom.bar(number, bins.rows, color="C1", width=0.7)
    for x, n, p in zip(number, bins.rows, bins.predicted):
        bottom.annotate(f"p={p:.3g}", (x, n), textcoords="offset points", xytext=(0, 2),
                        ha="center", fontsize=7, color="0.3")
    bottom.set_xticks(number)
    bottom.set_ylim(0, float(bins.rows.max()) * 1.25)
    bottom.set_xlabel("bin, from the lowest predictions to the highest (p: its mean prediction)")
    bottom.set_ylabel("rows in the bin")
    bottom.grid(alpha=0.3, axis="y")
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buffer.getvalue())
    return out
