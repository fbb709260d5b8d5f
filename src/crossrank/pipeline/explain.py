"""Which crosses a saved model learned: heatmaps, ranked field pairs, the polynomial."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from crossrank.errors import ConfigError
from crossrank.pipeline.model_dir import encoded_batches, load_model_dir
from crossrank.train.checkpoint import atomic_write_json


def explain_model_dir(model_dir: str | Path, *, data: str | None = None, fmt: str | None = None,
                      out_dir: str | Path | None = None, top_k: int = 20,
                      measure: str = "frobenius") -> str:
    """Field-pair importance of a saved model: heatmap PNG, JSON and a ranked table."""
    from crossrank.explain import explain_model

    model, meta, encoder, schema = load_model_dir(model_dir)
    shared = ""
    if len(model.tasks) > 1:
        if model.cross_network() is None:
            raise ConfigError(f"explain reads one cross network; this multi-task model "
                              f"({model.describe()}) has one per expert or none: train "
                              "multitask.arch=shared_bottom to explain the shared body")
        shared = f", the shared body of {len(model.tasks)} tasks ({', '.join(schema.labels)})"
    x0 = None
    if data is not None:
        unweighted = dataclasses.replace(schema, weight=None, extra_labels=(),
                                         extra_tasks=())  # the features are all it needs
        batches = list(encoded_batches(data, fmt, unweighted, encoder, "error", None))
        dense = torch.from_numpy(np.concatenate([b.dense for b in batches]))
        sparse = torch.from_numpy(np.concatenate([b.sparse for b in batches]))
        with torch.no_grad():
            x0 = model.cross_input(dense, sparse)  # type: ignore[operator]
    out = Path(out_dir) if out_dir else Path(model_dir) / "explain"
    title = f"{meta['model']['name']} ({Path(model_dir).name})" + shared + (
        f", data {Path(data).name}" if data else "")
    report = explain_model(model, out_dir=out, x0=x0, top_k=top_k, title=title,
                           measure=measure)
    atomic_write_json(out / "source.json", {"model_dir": str(model_dir), "data": data})
    tables = [report["table"]] + ([report["factorization_table"]]
                                  if report["factorization_table"] else [])
    if shared:
        tables.insert(0, f"multi-task model: the cross network of{shared[1:]}, read by "
                         "every task's tower")
    return "\n\n".join(tables) + f"\n\nwritten to {out}: " + ", ".join(
        str(Path(p).name) for p in report["paths"])
