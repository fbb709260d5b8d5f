"""Scoring without training code: raw rows -> the saved encoder -> ONNX Runtime -> scores.

Imports pyarrow, numpy and onnxruntime, never torch: a serving image needs only the
``crossrank[serve]`` dependencies. The encoding is the saved
:class:`~crossrank.data.FeatureEncoder`'s, so a score here equals ``crossrank predict``'s for
the same row (an unseen categorical value -> the out-of-vocabulary id, a missing one -> the
missing id, a missing dense value -> 0 after the transform, with its indicator if the encoder
has them).

Example:
    >>> scorer = Scorer("export")  # doctest: +SKIP
    >>> scorer.score([{"I1": 3, "C1": "68fd1e64"}])  # doctest: +SKIP
    array([0.0312...])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from crossrank.data.encoders import FeatureEncoder
from crossrank.data.schema import TableSchema
from crossrank.errors import ModelFileError
from crossrank.safe_io import relative_file
from crossrank.serving.manifest import MANIFEST, Manifest, read_manifest
from crossrank.serving.rows import from_arrow, from_records, typed_columns

__all__ = ["Scorer"]


class Scorer:
    """Scores raw rows with an ONNX export (``crossrank export --format onnx``).

    Args:
        export_dir: the export directory; its files are checked against the manifest's
            SHA-256 first.
        threads: ONNX Runtime's intra-op threads (None: its default, one per core).

    Rows may be a pyarrow Table, a pandas DataFrame, a list of dicts (JSON objects) or the
    path of a CSV/TSV/Parquet file (read as ``crossrank predict`` reads it). Each must have
    every column of :attr:`columns`; others are ignored.
    """

    def __init__(self, export_dir: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        directory = Path(export_dir)
        self.manifest: Manifest = read_manifest(directory)
        m = self.manifest
        if m.model_format != "onnx":
            raise ModelFileError(f"{directory}: holds a {m.model_format} export; the Scorer "
                                 "runs ONNX (crossrank export --format onnx); load model.pt2 "
                                 "with torch.export.load")
        source = directory / MANIFEST
        self.encoder = FeatureEncoder.load(relative_file(directory, m.encoder_dir,
                                                         source=source, key="encoder_dir"))
        self.schema = TableSchema.from_dict(m.table_schema)
        _check_encoder(self.encoder, m, source)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        model = relative_file(directory, m.model_file, source=source, key="model_file")
        self.session = ort.InferenceSession(str(model), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in m.inputs)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns a row must carry, dense then categorical."""
        return self.schema.dense + self.schema.categorical

    def score(self, rows: Any) -> np.ndarray:
        """Scores (float64, one per row, in order) of ``rows``.

        Raises:
            BadRowsError: a row that is not an object, a missing column, a value that cannot
                be read (non-numeric or non-finite dense, a float as a categorical value),
                naming the first such row and column.
        """
        if isinstance(rows, str | Path):
            return self.score_file(rows)
        if isinstance(rows, pa.Table):
            columns, n = from_arrow(rows, self.schema), rows.num_rows
        elif type(rows).__module__.partition(".")[0] == "pandas":
            columns, n = from_arrow(pa.Table.from_pandas(rows, preserve_index=False),
                                    self.schema), len(rows)
        elif isinstance(rows, Sequence) and not isinstance(rows, bytes):
            rows = list(rows)
            columns, n = from_records(rows, self.schema), len(rows)
        else:
            raise TypeError(f"rows must be a pyarrow Table, a pandas DataFrame, a list of "
                            f"dicts or a file path, got {type(rows).__name__}")
        table, problems = typed_columns(columns, self.schema, n)
        if problems is not None:
            raise problems.errors[0]
        return self.score_typed(table)

    def score_typed(self, table: pa.Table) -> np.ndarray:
        """Scores of a table the validation typed (:func:`~crossrank.serving.rows.typed_columns`)."""
        if table.num_rows == 0:
            return np.zeros(0)
        return self.run(self.encode(table))

    def encode(self, table: pa.Table) -> dict[str, np.ndarray]:
        """The model's inputs for a typed table, by input name."""
        batch = self.encoder.transform(table)
        by_kind = {"dense": batch.dense, "ids": batch.sparse}
        return {i.name: by_kind[i.kind] for i in self.manifest.inputs}

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The model on encoded inputs: scores as float64 (computed in float32)."""
        (scores,) = self.session.run(None, inputs)
        return np.asarray(scores, dtype=np.float64)

    def score_file(self, path: str | Path, *, fmt: str | None = None) -> np.ndarray:
        """Scores of every row of a file (or directory of shards), read as ``crossrank
        predict`` reads it; a bad row raises :class:`~crossrank.errors.BadInputError`."""
        import dataclasses

        from crossrank.data.column_check import check_columns
        from crossrank.data.files import infer_format, list_shards
        from crossrank.data.readers import iter_tables

        format_ = infer_format(path, fmt)
        out = []
        for file in list_shards(path):
            labelled = check_columns(file, format_, self.schema, need_label=False)
            schema = self.schema
            if schema.label is not None and not labelled:
                schema = dataclasses.replace(schema, label=None)
            for table in iter_tables(file, fmt=format_, schema=schema,
                                     skip_label=schema.label is not None):
                out.append(self.score_typed(table))
        return np.concatenate(out) if out else np.zeros(0)


def _check_encoder(encoder: FeatureEncoder, m: Manifest, source: Path) -> None:
    for spec in m.inputs:
        names = encoder.dense_names if spec.kind == "dense" else encoder.sparse_names
        sizes = None if spec.kind == "dense" else tuple(encoder.vocab_sizes)
        if tuple(names) != spec.columns or (sizes is not None and sizes != spec.vocab_sizes):
            raise ModelFileError(f"{source}: input {spec.name!r} does not match the saved "
                                 "encoder's outputs")
