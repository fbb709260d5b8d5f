"""``crossrank export``: a model directory written by ``crossrank train`` to an export
directory (:mod:`crossrank.serving.export` says what it holds)."""

from __future__ import annotations

from pathlib import Path

from crossrank.pipeline.model_dir import load_model_dir, sampling_rate
from crossrank.serving.export import export_model
from crossrank.serving.manifest import Manifest


def export_model_dir(model_dir: str | Path, *, out: str | Path, fmt: str = "onnx") -> Manifest:
    """Export the model of ``model_dir`` (its files checked first) to ``out`` as ``fmt``
    (``"onnx"`` or ``"pt2"``), with its encoder and ``serving.json``; a binary model's
    probabilities are recalibrated for its ``negative_sampling_rate`` inside the graph."""
    model, meta, encoder, schema = load_model_dir(model_dir)
    return export_model(model, encoder, schema, out, fmt=fmt,
                        negative_sampling_rate=sampling_rate(meta, Path(model_dir)))
