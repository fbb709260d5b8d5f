"""Reading a model directory back: the model, its metadata, its encoder and its table schema,
and the encoded batches of new files read with that schema."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crossrank.data import EncodedBatch, FeatureEncoder, RejectsLog, TableSchema, iter_tables
from crossrank.data.encode_stream import encode_stream
from crossrank.data.files import infer_format
from crossrank.data.negative_sampling import sampling_rate_from_metadata
from crossrank.data.oov_share import OOVTally, oov_warnings
from crossrank.data.readers import OnBadRows
from crossrank.models import RankingModel
from crossrank.safe_io import file_error
from crossrank.train.checkpoint import load_model


def load_model_dir(model_dir: str | Path) -> tuple[RankingModel, dict[str, Any], FeatureEncoder,
                                                   TableSchema]:
    """``(model, model.json's metadata, encoder, table schema)`` of a directory written by
    ``crossrank train``. Its files are checked before use: every file model.json records a
    SHA-256 of (the weights and the encoder's files; none in a directory written before
    crossrank recorded them), and each file's content; a problem is one ModelFileError line
    naming the file (see :func:`~crossrank.train.checkpoint.load_model`)."""
    model, meta = load_model(model_dir)
    meta_path = Path(model_dir) / "model.json"
    if "table_schema" not in meta:
        raise file_error(meta_path, KeyError("table_schema"))
    try:
        schema = TableSchema.from_dict(meta["table_schema"])
    except (KeyError, TypeError, ValueError) as err:
        raise file_error(meta_path, err, key="table_schema") from None
    encoder = FeatureEncoder.load(Path(model_dir) / "encoder")
    return model, meta, encoder, schema


def sampling_rate(meta: dict[str, Any], model_dir: Path) -> float:
    """The model's negative sampling rate (1 when model.json records none); a bad value is
    one ModelFileError line naming model.json."""
    try:
        return sampling_rate_from_metadata(meta)
    except ValueError as err:
        raise file_error(model_dir / "model.json", err, key="negative_sampling_rate") from None


def encoded_batches(data: str, fmt: str | None, schema: TableSchema, encoder: FeatureEncoder,
                    on_bad_rows: OnBadRows, rejects: RejectsLog | None) -> Iterator[EncodedBatch]:
    """The rows of ``data`` read with ``schema`` and encoded, chunk by chunk, in file order."""
    tables = iter_tables(data, fmt=infer_format(data, fmt), schema=schema,
                         on_bad_rows=on_bad_rows, rejects=rejects)
    for _, batch in encode_stream(tables, encoder):
        yield batch


def open_rejects(on_bad_rows: OnBadRows, rejects_path: str | Path | None,
                 default_dir: Path) -> RejectsLog | None:
    """The rejects log of ``--on-bad-rows skip`` (None otherwise): ``rejects_path``, or
    ``rejects.jsonl`` in ``default_dir`` (never the model directory, which may be read-only).
    A file that cannot be written is one line saying where."""
    if on_bad_rows != "skip":
        return None
    path = Path(rejects_path) if rejects_path else default_dir / "rejects.jsonl"
    try:
        return RejectsLog(path)
    except OSError as err:
        raise type(err)(f"cannot write the rejects file {path} ({err.strerror or err}); give "
                        "--rejects PATH in a directory you can write to") from None


def report_rejects(rejects: RejectsLog | None) -> None:
    if rejects is not None and rejects.total:
        print(f"skipped {rejects.total} bad rows ({rejects.summary()}); see {rejects.path}")


def oov_tally(encoder: FeatureEncoder) -> OOVTally:
    """A tally of out-of-vocabulary values over the fields the encoder has vocabularies for."""
    return OOVTally(encoder.sparse_names if encoder.hash_buckets is None else ())


def report_oov(tally: OOVTally, encoder: FeatureEncoder) -> list[str]:
    """Warn on stderr, one line per field, where far more values are out of the vocabulary
    than the training data leads one to expect (:mod:`crossrank.data.oov_share`); returns
    the lines."""
    lines = oov_warnings(tally, encoder.expected_oov) if tally.fields else []
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)
    return lines
