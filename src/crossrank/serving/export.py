"""Export a trained model: an ONNX file or a ``torch.export`` program, beside its encoder and
its manifest, in a directory that needs nothing else to score rows.

The exported graph takes the encoded inputs the manifest lists (``dense`` float32
``(B, n_dense)``, ``ids`` int64 ``(B, F)``; one is absent when the model has no such
features) and returns the score after the task's link, ``(B,)``: a probability for a binary
task, the value for regression. The batch dimension B is dynamic.

* ``"onnx"``: ``model.onnx`` from PyTorch's own exporter, ``torch.onnx.export(...,
  dynamo=True)`` applied to the ``torch.export`` program below (opset 20 with torch 2.13;
  the manifest records the opset and versions used).
* ``"pt2"``: ``model.pt2``, the ``torch.export.ExportedProgram`` itself
  (``torch.export.save``; read it back with ``torch.export.load``).

The model is rebuilt from its spec with every backend set to ``"reference"`` before export:
the Triton kernels are a training-time path, and the reference ops are the spec. Before
anything is kept, the exported model is run on a batch of one row and a batch of 64 and its
scores compared with the eager model's (:data:`PARITY_ATOL`).

Example:
    >>> import tempfile
    >>> from crossrank.data import FeatureEncoder, TableSchema
    >>> from crossrank.models import FeatureSchema, build_model
    >>> import pyarrow as pa
    >>> table = TableSchema(label="y", dense=("x",), categorical=("c",))
    >>> enc = FeatureEncoder(table).fit([pa.table({"y": [1.0], "x": [2.0], "c": ["a"]})])
    >>> model = build_model("dcn", FeatureSchema(dense=("x",), categorical=("c",),
    ...                     vocab_sizes=enc.vocab_sizes, embedding_dim=2), {"deep_layers": [4]})
    >>> out = Path(tempfile.mkdtemp()) / "export"
    >>> export_model(model, enc, table, out, fmt="pt2").model_file
    'model.pt2'
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from crossrank.data.encoders import FeatureEncoder
from crossrank.data.negative_sampling import check_sampling_rate, recalibrate
from crossrank.data.schema import TableSchema
from crossrank.models import RankingModel, model_from_spec, model_spec, predict
from crossrank.serving.manifest import ColumnSpec, InputSpec, Manifest, write_manifest

__all__ = ["EXPORT_FORMATS", "PARITY_ATOL", "export_model", "reference_model", "scoring_graph"]

EXPORT_FORMATS = ("onnx", "pt2")
PARITY_ATOL = 1e-5  # float32 scores of the exported model vs the eager one
_SAMPLE_ROWS = 8  # rows traced; the batch dimension is declared dynamic


class ScoringGraph(nn.Module):
    """``model``'s score after its task's link, from the inputs present (``kinds``: a
    sub-sequence of ``("dense", "ids")``), as positional tensors; a binary model's probability
    recalibrated for negative downsampling at ``rate``
    (:func:`~crossrank.data.negative_sampling.recalibrate`; 1: as it is).

    Shape:
        dense (B, n_dense) float32, ids (B, F) int64 -> (B,).
    """

    def __init__(self, model: RankingModel, kinds: tuple[str, ...], *,
                 rate: float = 1.0) -> None:
        super().__init__()
        self.model, self.kinds, self.rate = model, kinds, check_sampling_rate(rate)

    def forward(self, *inputs: Tensor) -> Tensor:
        given = dict(zip(self.kinds, inputs, strict=True))
        logits = self.model(given.get("dense"), given.get("ids"))  # (B,)
        if self.model.task == "binary":
            return recalibrate(predict(self.model.task, logits), self.rate)
        return predict(self.model.task, logits)


def _with_reference_backends(config: Any) -> Any:
    if isinstance(config, Mapping):
        return {k: "reference" if k == "backend" else _with_reference_backends(v)
                for k, v in config.items()}
    return config


def reference_model(model: RankingModel) -> RankingModel:
    """A copy of ``model`` on the CPU in eval mode whose every part runs the reference ops
    (same weights, same spec but for ``backend``)."""
    spec = model_spec(model)
    clone = model_from_spec({**spec, "config": _with_reference_backends(spec["config"])})
    clone.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return clone.eval()


def scoring_graph(model: RankingModel, *,
                  rate: float = 1.0) -> tuple[ScoringGraph, tuple[str, ...]]:
    """The module that is exported (recalibrating for negative sampling ``rate``), and the
    kinds of its inputs in order."""
    kinds = tuple(k for k, n in (("dense", model.schema.num_dense),
                                 ("ids", model.schema.num_categorical)) if n)
    return ScoringGraph(reference_model(model), kinds, rate=rate).eval(), kinds


def sample_inputs(model: RankingModel, kinds: tuple[str, ...], rows: int,
                  seed: int = 0) -> tuple[Tensor, ...]:
    """Random encoded inputs: dense standard normal, ids uniform in each field's range."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for kind in kinds:
        if kind == "dense":
            out.append(torch.randn(rows, model.schema.num_dense, generator=g))  # (B, n_dense)
        else:
            out.append(torch.stack([torch.randint(0, v, (rows,), generator=g)
                                    for v in model.schema.vocab_sizes], dim=1))  # (B, F)
    return tuple(out)


def _export_program(graph: ScoringGraph, kinds: tuple[str, ...],
                    model: RankingModel) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1)
    example = sample_inputs(model, kinds, _SAMPLE_ROWS)
    with torch.no_grad():
        return torch.export.export(graph, example,
                                   dynamic_shapes=(tuple({0: batch} for _ in kinds),))


def _run_onnx(data: bytes, names: list[str], inputs: tuple[Tensor, ...]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {n: t.numpy() for n, t in zip(names, inputs,
                                                                          strict=True)})[0])


def _check_parity(run: Any, graph: ScoringGraph, kinds: tuple[str, ...],
                  model: RankingModel) -> None:
    for rows in (1, 64):
        inputs = sample_inputs(model, kinds, rows, seed=rows)
        with torch.no_grad():
            eager = graph(*inputs).numpy()
        got = run(inputs)
        worst = float(np.max(np.abs(got - eager))) if got.shape == eager.shape else np.inf
        if not worst <= PARITY_ATOL:
            raise RuntimeError(f"the exported model's scores differ from the eager model's at "
                               f"batch {rows}: max |diff| {worst:.3g} > {PARITY_ATOL} "
                               f"(shapes {got.shape}, {eager.shape}); a bug in crossrank or "
                               "the exporter")


def _write_model(tmp: Path, fmt: str, graph: ScoringGraph, kinds: tuple[str, ...],
                 model: RankingModel) -> tuple[str, dict[str, Any]]:
    with warnings.catch_warnings():
        # torch 2.13's own pytree code warns about its own deprecated LeafSpec check
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
        return _write_model_quietly(tmp, fmt, graph, kinds, model)


def _write_model_quietly(tmp: Path, fmt: str, graph: ScoringGraph, kinds: tuple[str, ...],
                         model: RankingModel) -> tuple[str, dict[str, Any]]:
    program = _export_program(graph, kinds, model)
    exporter: dict[str, Any] = {"torch": torch.__version__, "dynamic_axes": {"batch": 0}}
    if fmt == "pt2":
        torch.export.save(program, tmp / "model.pt2")
        loaded = torch.export.load(tmp / "model.pt2").module()
        _check_parity(lambda xs: loaded(*xs).detach().numpy(), graph, kinds, model)
        return "model.pt2", {**exporter, "exporter": "torch.export.export"}
    onnx_program = torch.onnx.export(program, sample_inputs(model, kinds, _SAMPLE_ROWS),
                                     dynamo=True, input_names=list(kinds),
                                     output_names=["score"], verbose=False)
    if onnx_program is None:  # only the legacy exporter returns None
        raise RuntimeError("torch.onnx.export returned no program")
    proto = onnx_program.model_proto
    data = proto.SerializeToString()
    _check_parity(lambda xs: _run_onnx(data, list(kinds), xs), graph, kinds, model)
    (tmp / "model.onnx").write_bytes(data)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    return "model.onnx", {**exporter, "exporter": "torch.onnx.export(dynamo=True)",
                          "opset": int(opset)}


def export_model(model: RankingModel, encoder: FeatureEncoder, table_schema: TableSchema,
                 out_dir: str | Path, *, fmt: str = "onnx",
                 negative_sampling_rate: float = 1.0) -> Manifest:
    """Write ``out_dir``: the exported model, ``encoder/`` and ``serving.json``; a binary
    model's probabilities are recalibrated in the graph for ``negative_sampling_rate`` (the
    fraction of negatives its training data kept; see
    :mod:`crossrank.data.negative_sampling`).

    The directory is built beside ``out_dir`` under a temporary name and renamed into place
    when whole, so ``out_dir`` never holds a partial export. ``out_dir`` must not exist or be
    empty.

    Raises:
        ValueError: ``fmt`` is not one of :data:`EXPORT_FORMATS`, or the encoder does not
            match the model's inputs.
        FileExistsError: ``out_dir`` holds files.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"fmt must be one of {EXPORT_FORMATS}, got {fmt!r}")
    if len(encoder.dense_names) != model.schema.num_dense or \
            tuple(encoder.vocab_sizes) != tuple(model.schema.vocab_sizes):
        raise ValueError(f"the encoder's outputs ({len(encoder.dense_names)} dense, vocab sizes "
                         f"{encoder.vocab_sizes}) do not match the model's inputs "
                         f"({model.schema.num_dense} dense, {model.schema.vocab_sizes})")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not an empty directory; give a "
                              "new --out")
    graph, kinds = scoring_graph(model, rate=negative_sampling_rate)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model_file, exporter = _write_model(tmp, fmt, graph, kinds, model)
        encoder.save(tmp / "encoder")
        inputs = []
        if "dense" in kinds:
            inputs.append(InputSpec("dense", "dense", "float32", encoder.dense_names))
        if "ids" in kinds:
            inputs.append(InputSpec("ids", "ids", "int64", encoder.sparse_names,
                                    tuple(encoder.vocab_sizes)))
        columns = tuple(ColumnSpec(n, "dense") for n in table_schema.dense) + \
            tuple(ColumnSpec(n, "categorical") for n in table_schema.categorical)
        manifest = write_manifest(tmp, Manifest(
            model_file=model_file, model_format=fmt, columns=columns, inputs=tuple(inputs),
            task=model.task, model=model_spec(model),
            table_schema=table_schema.to_dict(),
            exporter=exporter, id_column=table_schema.id_column))
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
