"""``serving.json``: what an export directory holds and how to feed its model.

An export directory is self-contained::

    model.onnx | model.pt2   the model: encoded inputs -> score after the task's link
    encoder/                 the saved FeatureEncoder (encoder.json, vocab.arrow)
    serving.json             this manifest

The manifest records, in plain JSON:

* ``columns``: the raw columns a row must have, in order, each with its ``kind``
  (``"dense"``: a number or missing; ``"categorical"``: text or an integer, or missing;
  ``"multi_valued"``: a list of texts or integers, or one text of elements joined by its
  ``separator``, or missing, with the field's ``pooling``, ``max_length`` and ``keep``);
* ``inputs``: the model's inputs in order, each with its ``kind`` (``"dense"``: float32
  ``(B, n)`` of the encoder's ``columns``; ``"ids"``: int64 ``(B, F)`` with ``vocab_sizes``;
  ``"padded_ids"``, for a model with multi-valued fields: int64 ``(B, sum of widths)``, each
  of ``columns`` taking ``widths[k]`` slots in order, a categorical field one and a
  multi-valued field its ``max_length``, its ids from the left, padded with ``pad_id`` -1;
  ids of field k lie in ``[0, vocab_sizes[k])``).
  Kinds are the extension point for new feature types: a reader that does not know a kind
  refuses the manifest, naming it, rather than feeding the model wrongly (so a manifest
  with multi-valued fields is still version 1: older readers refuse its kinds by name);
* ``output``: its name and meaning (``"probability"`` for a binary task, ``"value"`` for
  regression);
* ``model``: the model's spec (:func:`~crossrank.models.model_spec`), ``table_schema``, the
  crossrank version and the exporter (torch version, ONNX opset);
* ``sha256``: the SHA-256 of every other file in the directory, checked on load.

Paths inside the manifest are plain names inside the directory, never followed out of it.

Example:
    >>> m = Manifest(model_file="model.onnx", model_format="onnx", columns=(
    ...     ColumnSpec("I1", "dense"), ColumnSpec("C1", "categorical")), inputs=(
    ...     InputSpec("dense", "dense", "float32", ("I1",)),
    ...     InputSpec("ids", "ids", "int64", ("C1",), (10,))), task="binary",
    ...     model={}, table_schema={}, exporter={})
    >>> Manifest.from_dict(m.to_dict()) == m, m.output
    (True, {'name': 'score', 'meaning': 'probability'})
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossrank import __version__
from crossrank.errors import ModelFileError
from crossrank.safe_io import (
    atomic_write_text,
    read_json_object,
    relative_file,
    sha256_file,
    verify_sha256,
)

__all__ = ["COLUMN_KINDS", "INPUT_KINDS", "MANIFEST", "ColumnSpec", "InputSpec", "Manifest",
           "read_manifest", "write_manifest"]

MANIFEST = "serving.json"
FORMAT = "crossrank-serving"
VERSION = 1
COLUMN_KINDS = ("dense", "categorical", "multi_valued")
INPUT_KINDS = ("dense", "ids", "padded_ids")
PAD_ID = -1  # the padding of a multi-valued field's slots in "padded_ids"
MODEL_FORMATS = ("onnx", "pt2")
MEANINGS = {"binary": "probability", "regression": "value"}


@dataclass(frozen=True)
class ColumnSpec:
    """A raw column a row must carry: its name and kind (one of :data:`COLUMN_KINDS`); a
    multi-valued column also has its field's options (``multi_valued``: separator, pooling,
    max_length, keep, as :class:`~crossrank.data.MultiValuedSpec` writes them)."""

    name: str
    kind: str
    multi_valued: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        return d if self.multi_valued is None else {**d, **self.multi_valued}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnSpec:
        if d["kind"] != "multi_valued":
            return cls(str(d["name"]), str(d["kind"]))
        options = {k: d[k] for k in ("separator", "pooling", "max_length", "keep")}
        return cls(str(d["name"]), "multi_valued", options)


@dataclass(frozen=True)
class InputSpec:
    """One model input: name, kind (one of :data:`INPUT_KINDS`), dtype, the encoded columns
    along its second axis, (ids) each field's number of ids and (padded ids) each field's
    number of slots."""

    name: str
    kind: str
    dtype: str
    columns: tuple[str, ...]
    vocab_sizes: tuple[int, ...] | None = None
    widths: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {**dataclasses.asdict(self), "columns": list(self.columns),
             "vocab_sizes": None if self.vocab_sizes is None else list(self.vocab_sizes)}
        del d["widths"]
        if self.widths is not None:  # padded ids only: the manifests of v1 stay as they were
            d |= {"widths": list(self.widths), "pad_id": PAD_ID}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        def ints(key: str) -> tuple[int, ...] | None:
            return None if d.get(key) is None else tuple(int(v) for v in d[key])

        spec = cls(str(d["name"]), str(d["kind"]), str(d["dtype"]),
                   tuple(map(str, d["columns"])), ints("vocab_sizes"), ints("widths"))
        if spec.kind == "padded_ids" and (spec.widths is None or spec.vocab_sizes is None or
                                          not len(spec.widths) == len(spec.vocab_sizes)
                                          == len(spec.columns) or d.get("pad_id") != PAD_ID):
            raise ValueError(f"input {spec.name!r} of kind 'padded_ids' needs widths and "
                             f"vocab_sizes for each of its columns and pad_id {PAD_ID}")
        return spec


@dataclass(frozen=True)
class Manifest:
    """The content of ``serving.json`` (see the module doc)."""

    model_file: str
    model_format: str
    columns: tuple[ColumnSpec, ...]
    inputs: tuple[InputSpec, ...]
    task: str
    model: dict[str, Any]
    table_schema: dict[str, Any]
    exporter: dict[str, Any]
    id_column: str | None = None
    encoder_dir: str = "encoder"
    crossrank_version: str = __version__
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> dict[str, str]:
        return {"name": "score", "meaning": MEANINGS[self.task]}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION,
                "crossrank_version": self.crossrank_version,
                "model_file": self.model_file, "model_format": self.model_format,
                "encoder_dir": self.encoder_dir,
                "columns": [c.to_dict() for c in self.columns],
                "id_column": self.id_column,
                "inputs": [i.to_dict() for i in self.inputs],
                "output": self.output, "task": self.task, "model": self.model,
                "table_schema": self.table_schema, "exporter": self.exporter,
                "sha256": dict(sorted(self.sha256.items()))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        """The manifest of :meth:`to_dict`'s output; raises ValueError/KeyError/TypeError on
        anything else (:func:`read_manifest` names the file)."""
        if d.get("format") != FORMAT or d.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} v{VERSION} manifest: format={d.get('format')!r}, "
                             f"version={d.get('version')!r}")
        _known_kinds(d["columns"], "column", COLUMN_KINDS)
        columns = tuple(ColumnSpec.from_dict(c) for c in d["columns"])
        _known_kinds(d["inputs"], "input", INPUT_KINDS)
        inputs = tuple(InputSpec.from_dict(i) for i in d["inputs"])
        if d["model_format"] not in MODEL_FORMATS or d["task"] not in MEANINGS:
            raise ValueError(f"model_format must be one of {MODEL_FORMATS} and task one of "
                             f"{tuple(MEANINGS)}, got {d['model_format']!r}, {d['task']!r}")
        sha = d["sha256"]
        if not isinstance(sha, dict):
            raise TypeError(f"sha256 must be an object, got {type(sha).__name__}")
        return cls(model_file=str(d["model_file"]), model_format=d["model_format"],
                   columns=columns, inputs=inputs, task=d["task"], model=dict(d["model"]),
                   table_schema=dict(d["table_schema"]), exporter=dict(d["exporter"]),
                   id_column=d.get("id_column"), encoder_dir=str(d["encoder_dir"]),
                   crossrank_version=str(d["crossrank_version"]),
                   sha256={str(k): str(v) for k, v in sha.items()})


def write_manifest(directory: Path, manifest: Manifest) -> Manifest:
    """Write ``serving.json`` into ``directory``, with the SHA-256 of every other file there
    (written last, whole or not at all); returns the manifest as written."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)
    sha = {p.relative_to(directory).as_posix(): sha256_file(p) for p in files}
    done = dataclasses.replace(manifest, sha256=sha)
    atomic_write_text(directory / MANIFEST, json.dumps(done.to_dict(), indent=1) + "\n")
    return done


def read_manifest(directory: str | Path) -> Manifest:
    """The manifest of an export directory, every file it records checked against its
    SHA-256 first; a problem is one :class:`~crossrank.errors.ModelFileError` line naming the
    file (a recorded path that leads out of the directory is one too)."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ModelFileError(f"{directory}: not an export directory (no such directory)")
    d = read_json_object(path)
    try:
        manifest = Manifest.from_dict(d)
    except (KeyError, TypeError, ValueError) as err:
        detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise ModelFileError(f"{path}: {detail}") from None
    for name, expected in manifest.sha256.items():
        verify_sha256(relative_file(directory, name, source=path, key="sha256"), expected,
                      recorded_in=path)
    needed = [manifest.model_file, f"{manifest.encoder_dir}/encoder.json"]
    for name in needed:
        relative_file(directory, name, source=path, key="model_file/encoder_dir")
        if name not in manifest.sha256:
            raise ModelFileError(f"{path}: records no SHA-256 of {name}")
    return manifest


def _known_kinds(entries: list[dict[str, Any]], what: str, known: tuple[str, ...]) -> None:
    """Refuse, by name, an entry whose kind this version cannot feed (a newer export)."""
    for entry in entries:
        if entry["kind"] not in known:
            raise ValueError(f"{what} {entry['name']!r} has kind {entry['kind']!r}, which this "
                             f"crossrank ({__version__}) cannot feed (it knows {known})")
