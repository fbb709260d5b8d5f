"""Scores of a saved model for the rows of files: one line per input row, in input order."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import torch

from crossrank.data import TableSchema, check_columns
from crossrank.data.files import infer_format
from crossrank.data.readers import OnBadRows
from crossrank.models import predict
from crossrank.pipeline.model_dir import encoded_batches, load_model_dir, open_rejects, report_rejects


def _file_label(data: str, fmt: str | None, schema: TableSchema) -> str | None:
    """The label column if ``data`` has it, else None (unlabelled rows to score)."""
    has_label = check_columns(data, infer_format(data, fmt), schema, need_label=False)
    return schema.label if has_label else None


def predict_on_data(model_dir: str | Path, *, data: str, out_path: str | Path,
                    fmt: str | None = None, on_bad_rows: OnBadRows = "error",
                    rejects_path: str | Path | None = None) -> int:
    """Write one score per input row, in input order (with the id column first if any), as CSV
    with ``\\n`` line ends; returns the number of scores written."""
    model, _, encoder, schema = load_model_dir(model_dir)
    # Prediction input may or may not carry the label column: look at the file.
    read_schema = dataclasses.replace(schema, label=_file_label(data, fmt, schema))
    rejects = open_rejects(on_bad_rows, rejects_path, Path(out_path).parent)  # beside --out
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.tmp")
    rows = 0
    with open(tmp, "w", newline="") as fh:
        # "\n", not csv's default "\r\n": `paste input.tsv scores.csv` must not carry a "\r"
        writer = csv.writer(fh, lineterminator="\n")
        header_written = False
        for batch in encoded_batches(data, fmt, read_schema, encoder, on_bad_rows, rejects):
            with torch.no_grad():
                logits = model(torch.from_numpy(batch.dense), torch.from_numpy(batch.sparse))
                scores = predict(model.task, logits).double().numpy()
            if not header_written:
                writer.writerow(([schema.id_column] if batch.ids is not None else []) + ["score"])
                header_written = True
            if batch.ids is not None:
                writer.writerows(zip(batch.ids.tolist(), (f"{s:.8g}" for s in scores)))
            else:
                writer.writerows([f"{s:.8g}"] for s in scores)
            rows += len(scores)
    tmp.replace(out)
    report_rejects(rejects)
    return rows
