"""``explain_model``: the whole model-understanding report for an in-memory model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from crossrank.explain.factorization import factorization_pairs, format_factorization_table
from crossrank.explain.importance import field_pair_importance
from crossrank.explain.plots import plot_field_importance
from crossrank.explain.polynomial import extract_polynomial, polynomial_problem
from crossrank.layers.factorization import FactorizationMachine
from crossrank.models.protocol import CrossModel


def explain_model(model: nn.Module, *, out_dir: str | Path, x0: Tensor | None = None,
                  top_k: int = 20, title: str | None = None,
                  measure: str = "frobenius") -> dict[str, Any]:
    """Write field-pair importance (JSON, ranked table, heatmaps) and, when the model is a
    small dense-only cross model, its learned polynomial.

    Files in ``out_dir``: ``importance.json``; ``importance.txt`` (the top-k table, combined
    and per layer); ``importance.png`` (combined over layers) and ``importance_layer{l}.png``
    per layer when there is more than one; ``polynomial.txt`` when ``extract_polynomial``
    applies. A model with a factorization machine term (``terms.fm_dim``) also gets its field
    pairs ranked in ``importance.txt`` and under ``"factorization_pairs"`` in ``importance.json``.

    Args:
        model: a DCN, a DLRM with ``interaction="dcn"`` or a CrossNet (anything else: a
            one-line ConfigError saying it has no cross network).
        out_dir: folder for the files (created).
        x0: (B, N) cross inputs (``model.cross_input(dense, categorical)``); required for DCN-Mix.
        top_k: pairs in the tables.
        title: first line of the heatmap titles, e.g. the model and data set names.
        measure: "frobenius" (block norms, as the DCN-V2 paper) or "rms" (block norms over
            sqrt(block size), fair between 1-column dense features and D-column embeddings).

    Returns:
        ``{"table": str, "paths": [str], "json": str, "heatmaps": [str],
        "top_pairs": [dict], "factorization_table": str | None,
        "factorization_pairs": [dict] | None, "polynomial": str | None}``, JSON-serialisable.

    Example:
        >>> import tempfile
        >>> from crossrank.layers import CrossNet
        >>> with tempfile.TemporaryDirectory() as d:
        ...     sorted(Path(p).name for p in explain_model(CrossNet(3, 1), out_dir=d)["paths"])
        ['importance.json', 'importance.png', 'importance.txt']
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    importance = field_pair_importance(model, x0=x0, measure=measure)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = importance.format_table(top_k=top_k)
    sections = [table]
    if importance.num_layers > 1:
        sections += [importance.format_table(top_k=top_k, layer=i)
                     for i in range(importance.num_layers)]

    report = importance.to_dict(top_k=top_k)
    fm_pairs, fm_table = None, None
    terms = model.additive_terms() if isinstance(model, CrossModel) else {}
    fm = next((t for t in terms.values() if isinstance(t, FactorizationMachine)), None)
    if fm is not None:
        ranked = factorization_pairs(fm, top_k=top_k)
        fm_pairs, fm_table = [p.to_dict() for p in ranked], format_factorization_table(ranked)
        sections.append(fm_table)
        report["factorization_pairs"] = fm_pairs
    json_path = out / "importance.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    table_path = out / "importance.txt"
    table_path.write_text("\n\n".join(sections) + "\n")
    heatmaps = [plot_field_importance(importance, out / "importance.png", title=title)]
    if importance.num_layers > 1:
        heatmaps += [plot_field_importance(importance, out / f"importance_layer{i}.png",
                                           layer=i, title=title)
                     for i in range(importance.num_layers)]
    paths = [json_path, table_path, *heatmaps]

    polynomial = None
    if polynomial_problem(model) is None:
        try:
            poly = extract_polynomial(model)
        except ValueError:  # too many monomials to be readable: importance is the report
            poly = None
        if poly is not None:
            polynomial = poly.format(top=top_k)
            poly_path = out / "polynomial.txt"
            poly_path.write_text(f"Learned logit polynomial, largest |coefficient| first:\n"
                                 f"{poly.format()}\n")
            paths.append(poly_path)
    return {"table": table, "paths": [str(p) for p in paths], "json": str(json_path),
            "heatmaps": [str(p) for p in heatmaps],
            "top_pairs": [p.to_dict() for p in importance.pairs(top_k=top_k)],
            "factorization_table": fm_table,
            "factorization_pairs": fm_pairs,
            "polynomial": polynomial}
