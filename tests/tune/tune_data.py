"""Tiny click logs for the tuning tests: each trial trains in well under a second."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_clicks(path: Path, rows: int = 600, seed: int = 0) -> Path:
    """A CSV click log whose label depends on a dense column and a categorical pair."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    a, b = rng.integers(0, 8, size=rows), rng.integers(0, 5, size=rows)
    logit = 1.5 * x + np.where((a % 2) == (b % 2), 1.0, -1.0)
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    lines = ["label,x,a,b"] + [f"{label[i]},{x[i]:.4f},a{a[i]},b{b[i]}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


# a small base run: every trial trains a tiny DNN for two epochs on one thread
BASE = {"model": {"name": "dnn", "embedding_dim": 4, "deep_layers": [8]},
        "training": {"epochs": 2, "batch_size": 128, "threads": 1, "progress": False}}
SPACE = {"default_space": False,
         "space": {"training.lr": {"low": 1e-3, "high": 1e-1, "log": True},
                   "model.dropout": [0.0, 0.3]}}


