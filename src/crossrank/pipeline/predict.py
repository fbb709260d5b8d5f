"""Scores of a saved model for the rows of files: exactly one line per input row, in input order.

Probabilities are recalibrated for the model's negative downsampling
(``negative_sampling_rate`` in ``model.json``; :func:`~crossrank.data.negative_sampling.recalibrate`).

The output is CSV with ``\\n`` line ends and the columns ``[id column,] score, status`` (a
multi-task model: one score column per label, named after it, instead of ``score``): a
scored row has status ``ok``; a row that cannot be scored (``--on-bad-rows skip``) keeps its
place with an empty id and score and, as status, the reason it was rejected (a key of
:data:`crossrank.errors.REASONS`: ``wrong_field_count``, ``non_numeric``, ...), so the output
lines up with the input row for row, file after file. Readers place a rejected row by its
file and physical line (text) or row index (Parquet), and every scored row by the same, so
the two merge exactly (:func:`~crossrank.data.iter_tables` ``positions``).

Damage that stops a file being read on is the one case without a line per row. In Parquet
the rest of the damaged row group is unread, and the footer says how many rows that is: one
``bad_file`` line each. A text file cut short (a truncated or corrupt compressed stream, a
record longer than the parser's block) has an unknown number of lines left: its output ends
with a single line whose status is ``rest_of_file_unread``, standing for all of them.

The label and weight columns are never read: a file that has them (right or wrong) scores as
one without.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from crossrank.data import RejectsLog, TableSchema, check_columns, iter_tables
from crossrank.data.encode_stream import encode_stream
from crossrank.data.files import infer_format, list_shards
from crossrank.data.negative_sampling import recalibrate
from crossrank.data.readers import OnBadRows
from crossrank.errors import BadInputError
from crossrank.models.task import predict_tasks
from crossrank.pipeline.model_dir import (
    load_model_dir,
    oov_tally,
    open_rejects,
    report_oov,
    report_rejects,
    sampling_rate,
)

REST_UNREAD = "rest_of_file_unread"  # the status of a text file's unreadable rest
_PLACE = "__crossrank_place__"  # the readers' positions column: not a name a file uses


@dataclasses.dataclass(frozen=True)
class Predicted:
    """What :func:`predict_on_data` wrote.

    Attributes:
        lines: data lines (after the header): one per input row, except that a text file cut
            short has one line for all its unread rest.
        scored: lines with a score (status ``ok``).
        oov_warnings: fields with far more out-of-vocabulary values than training leads one
            to expect (:mod:`crossrank.data.oov_share`), also printed on stderr.
    """

    lines: int
    scored: int
    oov_warnings: tuple[str, ...] = ()


class _RowWriter(Protocol):  # csv.writer's (its class is private before Python 3.13)
    def writerows(self, rows: Iterable[Iterable[Any]], /) -> Any: ...


class _Placed(RejectsLog):
    """Keeps every rejected row until its line is written, and passes it on to ``log``."""

    def __init__(self, log: RejectsLog) -> None:
        super().__init__(None)
        self.log = log
        self.pending: deque[BadInputError] = deque()

    def add(self, error: BadInputError, *, raw: str | None = None) -> None:
        super().add(error, raw=raw)
        self.log.add(error, raw=raw)
        self.pending.append(error)


class _Lines:
    """The output rows of one input file at a time, scored and rejected rows merged by place."""

    def __init__(self, writer: _RowWriter, with_id: bool, placed: _Placed | None, *,
                 num_scores: int = 1) -> None:
        self.writer, self.with_id, self.placed = writer, with_id, placed
        self.num_scores = num_scores  # score columns: one per task
        self.lines = self.scored = 0
        self.group_ends: np.ndarray | None = None  # Parquet: where each row group ends

    def start(self, file: Path, fmt: str) -> None:
        self.file, self.fmt, self.group_ends = file, fmt, None

    def rows(self, places: np.ndarray, ids: np.ndarray | None, scores: np.ndarray) -> None:
        """Scored rows at ``places`` (ascending), after the rejected rows placed before them."""
        start = 0
        while self.placed is not None and self.placed.pending and len(places):
            place = _place(self.placed.pending[0])
            if place > places[-1]:
                break
            stop = int(np.searchsorted(places, place))
            self._scored(ids, scores, start, stop)
            start = stop
            self._rejected(self.placed.pending.popleft())
        self._scored(ids, scores, start, len(scores))

    def finish(self) -> None:
        """The file's rejected rows after its last scored row."""
        while self.placed is not None and self.placed.pending:
            self._rejected(self.placed.pending.popleft())

    def _scored(self, ids: np.ndarray | None, scores: np.ndarray, start: int, stop: int) -> None:
        if scores.ndim == 2:  # (n, T): one column per task
            head = [[i] for i in ids[start:stop].tolist()] if ids is not None else \
                [[] for _ in range(stop - start)]
            self.writer.writerows(h + [f"{s:.8g}" for s in row] + ["ok"]
                                  for h, row in zip(head, scores[start:stop]))
            self.lines += stop - start
            self.scored += stop - start
            return
        text = [f"{s:.8g}" for s in scores[start:stop]]
        if ids is not None:
            self.writer.writerows(zip(ids[start:stop].tolist(), text, ["ok"] * len(text)))
        else:
            self.writer.writerows(zip(text, ["ok"] * len(text)))
        self.lines += stop - start
        self.scored += stop - start

    def _rejected(self, error: BadInputError) -> None:
        if error.file != str(self.file):  # a bug: the readers read one file at a time here
            raise RuntimeError(f"a rejected row of {error.file} while writing {self.file}")
        if error.reason == "empty_file":  # no rows, no lines
            return
        count, status = 1, error.reason
        if error.reason == "bad_file" and self.fmt == "parquet":
            count = self._unread_rows(error)  # the rest of a row group: the footer counts it
        elif error.reason == "bad_file":
            status = REST_UNREAD  # a text file's rest: how many lines, nobody can tell
        line = [""] * (self.num_scores + (1 if self.with_id else 0)) + [status]
        self.writer.writerows([line] * count)
        self.lines += count

    def _unread_rows(self, error: BadInputError) -> int:
        if self.group_ends is None:
            from crossrank.data.parquet_reader import open_parquet

            meta = open_parquet(self.file).metadata
            self.group_ends = np.cumsum([meta.row_group(g).num_rows
                                         for g in range(meta.num_row_groups)])
        row = int(error.row or 0)
        end = self.group_ends[np.searchsorted(self.group_ends, row, side="right")]
        return int(end) - row


def _place(error: BadInputError) -> int:
    """Where a rejected row is in its file, in the readers' positions' terms."""
    place = error.line if error.line is not None else error.row
    # a whole-file problem has no place: after every row of the file
    return int(place) if place is not None else np.iinfo(np.int64).max


def predict_on_data(model_dir: str | Path, *, data: str, out_path: str | Path,
                    fmt: str | None = None, on_bad_rows: OnBadRows = "error",
                    rejects_path: str | Path | None = None) -> Predicted:
    """Write one line per input row, in input order, to the CSV ``out_path`` (the module doc
    says which columns and statuses); the header alone for input without rows."""
    model, meta, encoder, schema = load_model_dir(model_dir)
    schema = dataclasses.replace(schema, weight=None)  # never read, as the label
    rate = sampling_rate(meta, Path(model_dir)) if model.task == "binary" else 1.0
    format_ = infer_format(data, fmt)
    files = list_shards(data)
    # every file's columns are checked before anything is written
    has_label = [check_columns(f, format_, schema, need_label=False) for f in files]
    rejects = open_rejects(on_bad_rows, rejects_path, Path(out_path).parent)  # beside --out
    placed = None if rejects is None else _Placed(rejects)
    tally = oov_tally(encoder)
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with open(tmp, "w", newline="") as fh:
            # "\n", not csv's default "\r\n": `paste input.tsv scores.csv` must not carry "\r"
            writer = csv.writer(fh, lineterminator="\n")
            with_id = schema.id_column is not None
            names = ["score"] if len(model.tasks) == 1 else list(schema.labels)
            writer.writerow(([schema.id_column] if with_id else []) + names + ["status"])
            lines = _Lines(writer, with_id, placed, num_scores=len(names))
            for file, labelled in zip(files, has_label, strict=True):
                lines.start(file, format_)
                read_schema, skip_label = _label_unread(schema, labelled)
                tables = iter_tables(file, fmt=format_, schema=read_schema,
                                     skip_label=skip_label, on_bad_rows=on_bad_rows,
                                     rejects=placed, positions=_PLACE)
                for table, batch in encode_stream(tables, encoder):
                    tally.add(batch.sparse)
                    with torch.no_grad():
                        logits = model(torch.from_numpy(batch.dense),
                                       torch.from_numpy(batch.sparse))
                        scores = recalibrate(predict_tasks(model.tasks, logits).double(),
                                             rate).numpy()  # (n,), or (n, T) for T tasks
                    places = table.column(_PLACE).to_numpy()
                    lines.rows(places, batch.ids, scores)
                lines.finish()
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if rejects is not None:
            rejects.close()
    report_rejects(rejects)
    return Predicted(lines.lines, lines.scored, tuple(report_oov(tally, encoder)))


def _label_unread(schema: TableSchema, labelled: bool) -> tuple[TableSchema, bool]:
    """The reader's schema and ``skip_label`` for a file: the label is never read, and a
    Criteo file is split as having it as its first field or not (``labelled``)."""
    if schema.label is not None and not labelled:
        return schema.without_label(), False
    return schema, schema.label is not None
