"""Heatmaps of field-pair importance (matplotlib, Agg backend: files only, never a window)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crossrank.explain.importance import FieldImportance

DPI = 100
_COLORBAR_LABELS = {
    "frobenius": r"$\|W_{ij}\|_F$, Frobenius norm of the block of fields i, j",
    "rms": r"RMS entry of the block $W_{ij}$ ($\|W_{ij}\|_F\, /\, \sqrt{\mathrm{size}}$)",
}


def heatmap_size(num_fields: int) -> tuple[float, float]:
    """Figure size in inches for F fields: ~0.26 in per cell, the colorbar and labels beside.

    Example:
        >>> heatmap_size(5), heatmap_size(39)
        ((6.6, 6.0), (12.2, 11.6))
    """
    cells = max(4.5, 0.26 * num_fields)
    return round(cells + 2.1, 1), round(cells + 1.5, 1)


def plot_field_importance(importance: FieldImportance, path: str | Path, *,
                          layer: int | None = None, title: str | None = None,
                          dpi: int = DPI) -> Path:
    """Write a heatmap PNG of ``importance.matrix(layer)`` (the combined matrix for None).

    Rows are the ``x0`` side of the cross, columns the ``x_l`` side; the colour is
    ``||W[i, j]||_F``, the colorbar in the same unit. The title names ``title`` (e.g. the model
    and data set, default the model description), the layer and what the numbers were
    computed from. The figure is ``heatmap_size(F)`` inches at ``dpi``, so a PNG's pixel size
    is known in advance.

    Args:
        importance: from ``field_pair_importance``.
        path: the PNG to write (parent folders are created).
        layer: a layer index, or None for the combination over layers.
        title: first title line; default the model description.
        dpi: dots per inch.

    Example:
        >>> import tempfile, torch
        >>> from crossrank.layers import CrossNet
        >>> from crossrank.explain import field_pair_importance
        >>> imp = field_pair_importance(CrossNet(4, 2))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     plot_field_importance(imp, Path(d) / "h.png").stat().st_size > 1000
        True
    """
    import matplotlib

    matrix = importance.matrix(layer).numpy()
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi <= 0:
        raise ValueError(f"dpi must be a positive int, got {dpi!r}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    f = len(importance.fields)
    width, height = heatmap_size(f)
    label_size = max(7.0, min(11.0, 260.0 / max(f, 1)))
    if layer is not None:
        which = f"layer {layer}"
    elif importance.num_layers > 1:
        which = f"combined over {importance.num_layers} layers (root of the sum of squares)"
    else:
        which = "layer 0 (the only layer)"
    head = title if title is not None else importance.model
    # One short line each: a centred axes title wider than the figure is clipped at its edges.
    lines = [head, which, importance.source]
    if title is not None:
        lines.insert(1, importance.model)

    # A Figure with an Agg canvas, not pyplot: no GUI backend and no global state touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    fig = Figure(figsize=(width, height), dpi=dpi,
                 layout=ConstrainedLayoutEngine(w_pad=0.08, h_pad=0.08))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    top = float(matrix.max())
    # Zero is always the bottom colour; an all-zero matrix gets a 0..1 scale, not a 0..0 one.
    image = ax.imshow(matrix, cmap=matplotlib.colormaps["viridis"], interpolation="nearest",
                      vmin=0.0, vmax=top if top > 0 else 1.0, aspect="equal")
    ticks = list(range(f))
    ax.set_xticks(ticks, labels=importance.fields, rotation=90, fontsize=label_size)
    ax.set_yticks(ticks, labels=importance.fields, fontsize=label_size)
    # Mathtext for subscripts: plain underscores sit below the text box and get clipped.
    ax.set_xlabel(r"column field j  (the $x_l$ side of the cross $x_{0,i} \cdot W_{ij}\, x_{l,j}$)",
                  fontsize=10)
    ax.set_ylabel(r"row field i  (the $x_0$ side)", fontsize=10)
    ax.set_title("\n".join(lines), fontsize=11)
    # Thin gridlines between cells keep rows readable when F is large.
    ax.set_xticks([t - 0.5 for t in range(1, f)], minor=True)
    ax.set_yticks([t - 0.5 for t in range(1, f)], minor=True)
    ax.grid(which="minor", color="white", linewidth=0.3 if f > 20 else 0.6, alpha=0.5)
    ax.tick_params(which="minor", length=0)
    if f <= 12:
        _annotate(ax, matrix, fontsize=max(7.0, label_size - 1))
    bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02)
    bar.set_label(_COLORBAR_LABELS[importance.measure], fontsize=10)
    fig.savefig(out, dpi=dpi, format="png")
    return out


def _annotate(ax: Any, matrix: np.ndarray, *, fontsize: float) -> None:
    """Print each cell's value, dark on light cells and light on dark ones."""
    top = float(matrix.max()) or 1.0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            v = float(matrix[i, j])
            ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=fontsize,
                    color="black" if v > 0.6 * top else "white")
