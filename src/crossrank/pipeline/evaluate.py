"""Metrics of a saved model on labelled files: every row's metrics (weighted when the model
has a weight column), the group AUC by a column of the files, the reliability diagram."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa

from crossrank.data import EncodedDataset, check_columns, iter_tables
from crossrank.data.columns import column
from crossrank.data.encode_stream import encode_stream
from crossrank.data.files import infer_format
from crossrank.data.negative_sampling import recalibrate
from crossrank.data.readers import OnBadRows
from crossrank.errors import ConfigError
from crossrank.pipeline.evaluate_config import EvaluateConfig
from crossrank.pipeline.model_dir import (
    load_model_dir,
    oov_tally,
    open_rejects,
    report_oov,
    report_rejects,
    sampling_rate,
)
from crossrank.train.calibration import reliability_bins
from crossrank.train.gauc import group_auc
from crossrank.train.scoring import Scored, model_metrics, score

RELIABILITY_PNG = "reliability.png"


def evaluate_on_data(model_dir: str | Path, *, data: str, fmt: str | None = None,
                     on_bad_rows: OnBadRows = "error",
                     rejects_path: str | Path | None = None,
                     options: EvaluateConfig | None = None) -> dict[str, float]:
    """Metrics of a saved model on labelled ``data``, over all rows at once (AUC, log-loss, NE
    and calibration of the whole set, never averaged per batch; see
    :func:`~crossrank.train.metrics.compute_metrics`); with ``on_bad_rows="skip"``, also how
    many rows were read and skipped (``rows`` counts the rows scored).

    Probabilities are recalibrated for the model's negative downsampling first
    (:func:`~crossrank.data.negative_sampling.recalibrate`, ``negative_sampling_rate`` in
    ``model.json``). ``options.group_by`` adds the group AUC
    (:func:`~crossrank.train.gauc.group_auc`: gauc, uauc, gauc_groups, gauc_groups_skipped,
    gauc_rows_skipped); ``options.plots`` writes the reliability diagram there.
    """
    options = options or EvaluateConfig()
    model, meta, encoder, schema = load_model_dir(model_dir)
    if schema.label is None:
        raise ValueError("the model's schema has no label column; nothing to evaluate against")
    if len(model.tasks) > 1 and (options.group_by or options.plots):
        raise ConfigError(f"--group-by and --plots take a single-task model, this one has "
                          f"{len(model.tasks)} tasks ({', '.join(schema.labels)})")
    if model.task != "binary" and (options.group_by or options.plots):
        raise ConfigError(f"--group-by and --plots need a binary model, this one's task is "
                          f"{model.task!r}")
    if options.group_by is not None:
        try:
            schema = dataclasses.replace(schema, group=options.group_by)
        except ValueError as err:
            raise ConfigError(f"--group-by: {err}") from None
    rate = sampling_rate(meta, Path(model_dir))
    format_ = infer_format(data, fmt)
    check_columns(data, format_, schema, need_label=True)
    rejects = open_rejects(on_bad_rows, rejects_path, Path.cwd())  # not in the model dir
    scores, labels, weights, groups = [], [], [], []
    tally = oov_tally(encoder)
    tables = iter_tables(data, fmt=format_, schema=schema, on_bad_rows=on_bad_rows,
                         rejects=rejects)
    for table, batch in encode_stream(tables, encoder):
        tally.add(batch.sparse)
        s, y, w = score(model, EncodedDataset.from_batch(batch))
        scores.append(s)
        labels.append(y)
        weights.append(w)
        if options.group_by is not None:
            groups.append(_group_values(column(table, options.group_by)))
    report_rejects(rejects)
    report_oov(tally, encoder)  # a warning on stderr, the metrics stay numbers
    if not scores:
        raise ValueError(f"{data}: no rows to evaluate")
    s, y = np.concatenate(scores), np.concatenate(labels)
    w = None if any(x is None for x in weights) else np.concatenate(
        [x for x in weights if x is not None])
    if model.task == "binary" and rate != 1.0:
        s = recalibrate(s, rate)
    metrics = model_metrics(model.tasks, Scored(s, y, w), schema.labels)
    if rate != 1.0:
        metrics["negative_sampling_rate"] = rate
    if options.group_by is not None:
        by_group = group_auc(s, y, np.concatenate(groups), w)
        metrics.update({k if k in ("gauc", "uauc") else f"gauc_{k}": v
                        for k, v in by_group.items()})
    if options.plots is not None:
        bins = reliability_bins(s, y, w, bins=options.bins)
        from crossrank.pipeline.reliability_plot import plot_reliability

        what = f"{Path(model_dir).name or model_dir} on {Path(data).name}"
        if rate != 1.0:
            what += f" (recalibrated, rate {rate:g})"
        plot_reliability(bins, Path(options.plots) / RELIABILITY_PNG, title=what,
                         calibration=metrics["calibration"])
    if rejects is not None:
        metrics.update(_skipped(rejects.counts, int(metrics["rows"])))
    return metrics


def _group_values(values: pa.Array) -> np.ndarray:
    """A group column as numpy: int64, float64 or unicode (equal values, equal groups)."""
    if pa.types.is_integer(values.type):
        return values.to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_floating(values.type):
        return values.to_numpy(zero_copy_only=False).astype(np.float64)
    return np.asarray(values.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=np.str_)


def _skipped(counts: dict[str, int], scored: int) -> dict[str, float]:
    """How many rows the metrics leave out (``--on-bad-rows skip``): ``rows_read`` = ``rows``
    (scored) + ``rows_skipped`` (bad rows); ``unread_file_parts``: pieces of files that could
    not be read on (their rows are in neither count, being unread)."""
    unread = counts.get("bad_file", 0)
    bad_rows = sum(counts.values()) - unread - counts.get("empty_file", 0)
    return {"rows_read": scored + bad_rows, "rows_skipped": bad_rows,
            "unread_file_parts": unread}
