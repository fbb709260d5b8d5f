"""Metrics of a saved model on labelled files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crossrank.data import EncodedDataset, check_columns
from crossrank.data.files import infer_format
from crossrank.data.readers import OnBadRows
from crossrank.pipeline.model_dir import (
    encoded_batches,
    load_model_dir,
    oov_tally,
    open_rejects,
    report_oov,
    report_rejects,
)
from crossrank.train.loop import score
from crossrank.train.metrics import compute_metrics


def evaluate_on_data(model_dir: str | Path, *, data: str, fmt: str | None = None,
                     on_bad_rows: OnBadRows = "error",
                     rejects_path: str | Path | None = None) -> dict[str, float]:
    """Metrics of a saved model on labelled ``data``, over all rows at once (AUC and log-loss
    of the whole set, never averaged per batch); with ``on_bad_rows="skip"``, also how many
    rows were read and skipped (``rows`` counts the rows scored)."""
    model, _, encoder, schema = load_model_dir(model_dir)
    if schema.label is None:
        raise ValueError("the model's schema has no label column; nothing to evaluate against")
    check_columns(data, infer_format(data, fmt), schema, need_label=True)
    rejects = open_rejects(on_bad_rows, rejects_path, Path.cwd())  # not in the model dir
    scores, labels = [], []
    tally = oov_tally(encoder)
    for batch in encoded_batches(data, fmt, schema, encoder, on_bad_rows, rejects):
        tally.add(batch.sparse)
        s, y = score(model, EncodedDataset.from_batch(batch))
        scores.append(s)
        labels.append(y)
    report_rejects(rejects)
    report_oov(tally, encoder)  # a warning on stderr, the metrics stay numbers
    if not scores:
        raise ValueError(f"{data}: no rows to evaluate")
    metrics = compute_metrics(model.task, np.concatenate(scores), np.concatenate(labels))
    if rejects is not None:
        metrics.update(_skipped(rejects.counts, int(metrics["rows"])))
    return metrics


def _skipped(counts: dict[str, int], scored: int) -> dict[str, float]:
    """How many rows the metrics leave out (``--on-bad-rows skip``): ``rows_read`` = ``rows``
    (scored) + ``rows_skipped`` (bad rows); ``unread_file_parts``: pieces of files that could
    not be read on (their rows are in neither count, being unread)."""
    unread = counts.get("bad_file", 0)
    bad_rows = sum(counts.values()) - unread - counts.get("empty_file", 0)
    return {"rows_read": scored + bad_rows, "rows_skipped": bad_rows,
            "unread_file_parts": unread}
