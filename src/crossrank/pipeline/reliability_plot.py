"""The reliability diagram PNG of ``crossrank evaluate --plots DIR`` (matplotlib, Agg: files
only, never a window)."""

from __future__ import annotations

import io
from pathlib import Path

from crossrank.safe_io import atomic_write_bytes
from crossrank.train.calibration import ReliabilityBins

DPI = 100


def plot_reliability(bins: ReliabilityBins, path: str | Path, *, title: str,
                     calibration: float, dpi: int = DPI) -> Path:
    """Write the reliability diagram of ``bins`` to the PNG ``path`` (written whole or not at
    all): observed against mean predicted rate per equal-count bin, the diagonal of a
    calibrated model, each bin's row count written beside its point, and below, the rows per
    bin as bars over the bins' predicted rates.

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

    fig = Figure(figsize=(6.4, 7.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    high = max(float(bins.predicted.max()), float(bins.observed.max()), 1e-3) * 1.08
    high = min(high, 1.0) if high <= 1.0 else high
    top.plot([0, high], [0, high], color="0.6", linestyle="--", linewidth=1,
             label="calibrated (observed = predicted)")
    top.plot(bins.predicted, bins.observed, marker="o", color="C0", linewidth=1.5,
             label="model, one point per bin")
    for x, y, n in zip(bins.predicted, bins.observed, bins.rows):
        top.annotate(f"{int(n):,}", (x, y), textcoords="offset points", xytext=(4, -10),
                     fontsize=7, color="0.3")
    top.set_xlim(0, high)
    top.set_ylim(0, high)
    top.set_ylabel("observed event rate in the bin")
    top.set_title(f"{title}\nreliability, {len(bins.rows)} equal-count bins; "
                  f"calibration (sum p / sum y) = {calibration:.4f}", fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    width = high / max(len(bins.rows), 1) * 0.6
    bottom.bar(bins.predicted, bins.rows, width=width, color="C1")
    bottom.set_xlabel("mean predicted probability in the bin")
    bottom.set_ylabel("rows per bin")
    bottom.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buffer.getvalue())
    return out
