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

With multi-valued fields, ``ids`` is ``(B, F + sum of widths)`` (manifest kind
``"padded_ids"``): the F categorical ids, then each multi-valued field's ids padded with -1 to
its ``max_length``, as the encoder writes them; the graph pools them by a gather, a mask and a
reduction, ``mean`` dividing by the number of ids that are not -1 (an all -1 row pools to 0).

The model is rebuilt from its spec with every backend set to ``"reference"`` before export:
the Triton kernels are a training-time path, and the reference ops are the spec. Before
anything is kept, the exported model is run on a batch of one row and a batch of 64 and its
scores compared with the eager model's (:data:`PARITY_ATOL` plus :data:`PARITY_RTOL` times the
score).

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

import logging
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
from crossrank.errors import ConfigError
from crossrank.models import RankingModel, model_from_spec, model_spec, predict
from crossrank.serving.manifest import ColumnSpec, InputSpec, Manifest, write_manifest

__all__ = ["EXPORT_FORMATS", "PARITY_ATOL", "PARITY_RTOL", "export_model", "reference_model", "scoring_graph"]

EXPORT_FORMATS = ("onnx", "pt2")
PARITY_ATOL = 1e-5  # float32 scores of the exported model vs the eager one: absolute,
PARITY_RTOL = 1e-6  # plus relative (~16 float32 steps): a regression's values may be large
_SAMPLE_ROWS = 8  # rows traced; the batch dimension is declared dynamic


# the graph's input name of each input kind: padded ids are still the one ``ids`` tensor
INPUT_NAMES = {"dense": "dense", "ids": "ids", "padded_ids": "ids"}


class ScoringGraph(nn.Module):
    """``model``'s score after its task's link, from the inputs present (``kinds``: a
    sub-sequence of ``("dense", "ids" or "padded_ids")``), as positional tensors; a binary
    model's probability recalibrated for negative downsampling at ``rate``
    (:func:`~crossrank.data.negative_sampling.recalibrate`; 1: as it is).

    Shape:
        dense (B, n_dense) float32, ids (B, F) int64 (padded ids: (B, F + W)) -> (B,).
    """

    def __init__(self, model: RankingModel, kinds: tuple[str, ...], *,
                 rate: float = 1.0) -> None:
        super().__init__()
        self.model, self.kinds, self.rate = model, kinds, check_sampling_rate(rate)

    def forward(self, *inputs: Tensor) -> Tensor:
        given = {INPUT_NAMES[k]: x for k, x in zip(self.kinds, inputs, strict=True)}
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
    schema = model.schema
    ids = "padded_ids" if schema.multi_valued else "ids"
    kinds = tuple(k for k, n in (("dense", schema.num_dense),
                                 (ids, schema.categorical_width)) if n)
    return ScoringGraph(reference_model(model), kinds, rate=rate).eval(), kinds


def sample_inputs(model: RankingModel, kinds: tuple[str, ...], rows: int,
                  seed: int = 0) -> tuple[Tensor, ...]:
    """Random encoded inputs: dense standard normal, ids uniform in each field's range; a
    multi-valued field's ids a random number 0..width of them, then -1 (row 0 has none)."""
    g = torch.Generator().manual_seed(seed)
    schema = model.schema
    out = []
    for kind in kinds:
        if kind == "dense":
            out.append(torch.randn(rows, schema.num_dense, generator=g))  # (B, n_dense)
            continue
        parts = [torch.randint(0, v, (rows, 1), generator=g) for v in schema.vocab_sizes]
        for size, width in zip(schema.multi_valued_sizes, schema.multi_valued_widths,
                               strict=True):
            ids = torch.randint(0, size, (rows, width), generator=g)  # (B, W)
            length = torch.randint(0, width + 1, (rows, 1), generator=g)  # (B, 1)
            length[0] = 0  # an empty row: all padding
            parts.append(ids.masked_fill(torch.arange(width) >= length, -1))  # (B, W)
        out.append(torch.cat(parts, dim=1))  # (B, F + sum of widths)
    return tuple(out)


def _export_program(graph: ScoringGraph, kinds: tuple[str, ...],
                    model: RankingModel) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1)
    example = sample_inputs(model, kinds, _SAMPLE_ROWS)
    with torch.no_grad():
        return torch.export.export(graph, example,
                                   dynamic_shapes=(tuple({0: batch} for _ in kinds),))


def _run_onnx(data: bytes, names: list[str], inputs: tuple[Tensor, ...]) -> np.ndarray:
    """ONNX Runtime's scores of the serialized model on ``inputs`` (by input name)."""
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
        # the largest difference beyond the tolerance, |diff| - (atol + rtol |eager|)
        excess = float(np.max(np.abs(got - eager) - PARITY_RTOL * np.abs(eager))) \
            if got.shape == eager.shape else np.inf
        if not excess <= PARITY_ATOL:
            raise RuntimeError(f"the exported model's scores differ from the eager model's at "
                               f"batch {rows}: max |diff| - {PARITY_RTOL} |score| = "
                               f"{excess:.3g} > {PARITY_ATOL} "
                               f"(shapes {got.shape}, {eager.shape}); a bug in crossrank or "
                               "the exporter")


def _write_model(tmp: Path, fmt: str, graph: ScoringGraph, kinds: tuple[str, ...],
                 model: RankingModel) -> tuple[str, dict[str, Any]]:
    # the ONNX exporter's op registry logs a warning per torchvision op when torchvision is
    # not installed ("torchvision is not installed. Skipping torchvision::roi_pool"): ops no
    # crossrank model uses, lines a user would take for a problem with the export
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # torch 2.13's own pytree code warns about its own deprecated LeafSpec check
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
            return _write_model_quietly(tmp, fmt, graph, kinds, model)
    finally:
        registry.setLevel(level)


def _write_model_quietly(tmp: Path, fmt: str, graph: ScoringGraph, kinds: tuple[str, ...],
                         model: RankingModel) -> tuple[str, dict[str, Any]]:
    program = _export_program(graph, kinds, model)
    exporter: dict[str, Any] = {"torch": torch.__version__, "dynamic_axes": {"batch": 0}}
    if fmt == "pt2":
        torch.export.save(program, tmp / "model.pt2")
        loaded = torch.export.load(tmp / "model.pt2").module()
        _check_parity(lambda xs: loaded(*xs).detach().numpy(), graph, kinds, model)
        return "model.pt2", {**exporter, "exporter": "torch.export.export"}
    names = [INPUT_NAMES[k] for k in kinds]
    onnx_program = torch.onnx.export(program, sample_inputs(model, kinds, _SAMPLE_ROWS),
                                     dynamo=True, input_names=names,
                                     output_names=["score"], verbose=False)
    if onnx_program is None:  # only the legacy exporter returns None
        raise RuntimeError("torch.onnx.export returned no program")
    proto = onnx_program.model_proto
    data = proto.SerializeToString()
    _check_parity(lambda xs: _run_onnx(data, names, xs), graph, kinds, model)
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
        ConfigError: a multi-task model (several labels): not exported.
        FileExistsError: ``out_dir`` holds files.
    """
    if len(model.tasks) > 1:
        raise ConfigError(f"export takes a single-task model; this one has {len(model.tasks)} "
                          f"tasks ({', '.join(table_schema.labels)}): score it with crossrank "
                          "predict, which writes one column per task")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"fmt must be one of {EXPORT_FORMATS}, got {fmt!r}")
    s = model.schema
    given = (len(encoder.dense_names), tuple(encoder.vocab_sizes), encoder.lists.sizes,
             encoder.lists.widths)
    wanted = (s.num_dense, s.vocab_sizes, s.multi_valued_sizes, s.multi_valued_widths)
    if given != wanted:
        raise ValueError(f"the encoder's outputs ({given[0]} dense, vocab sizes {given[1]}, "
                         f"multi-valued sizes {given[2]} and widths {given[3]}) do not match "
                         f"the model's inputs ({wanted[0]} dense, {wanted[1]}, {wanted[2]}, "
                         f"{wanted[3]})")
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
        manifest = write_manifest(tmp, Manifest(
            model_file=model_file, model_format=fmt, columns=_columns(table_schema),
            inputs=_inputs(encoder, kinds),
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


def _inputs(encoder: FeatureEncoder, kinds: tuple[str, ...]) -> tuple[InputSpec, ...]:
    """The manifest's inputs: what each slot of the graph's inputs holds."""
    inputs = []
    if "dense" in kinds:
        inputs.append(InputSpec("dense", "dense", "float32", encoder.dense_names))
    if "ids" in kinds:
        inputs.append(InputSpec("ids", "ids", "int64", encoder.sparse_names,
                                tuple(encoder.vocab_sizes)))
    if "padded_ids" in kinds:
        names = encoder.sparse_names + tuple(spec.name for spec in encoder.lists.specs)
        inputs.append(InputSpec("ids", "padded_ids", "int64", names,
                                tuple(encoder.vocab_sizes) + encoder.lists.sizes,
                                (1,) * len(encoder.sparse_names) + encoder.lists.widths))
    return tuple(inputs)


def _columns(table_schema: TableSchema) -> tuple[ColumnSpec, ...]:
    """The manifest's raw columns, in the schema's order, a multi-valued one with its options."""
    return tuple(ColumnSpec(n, "dense") for n in table_schema.dense) + \
        tuple(ColumnSpec(n, "categorical") for n in table_schema.categorical) + \
        tuple(ColumnSpec(m.name, "multi_valued", {k: m.to_dict()[k] for k in (
            "separator", "pooling", "max_length", "keep")}) for m in table_schema.multi_valued)
