"""From files to a trained model, metrics, scores and explanations: what the CLI runs.

``train_from_data`` streams the training files twice (fit the encoder, then encode to a binary
cache; shared out by file among data-parallel ranks, see :mod:`crossrank.data.prepare`), carves the
validation rows off the end, trains, and writes the model directory:
``model.safetensors`` + ``model.json`` (model spec, training config, table schema, encoder,
metrics), ``metrics.jsonl``, ``encoder/``, ``cache/`` and, for ``--resume``, the latest state.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import torch

from crossrank.data.files import Format, infer_format
from crossrank.data.prepare import EncoderOptions, prepare_data
from crossrank.data.readers import OnBadRows
from crossrank.data.synthetic_default import write_default_synthetic
from crossrank.distributed import current_context, run_agreed
from crossrank.models import FeatureSchema, build_model
from crossrank.models.heads import predict
from crossrank.train.checkpoint import atomic_write_json, load_model
from crossrank.train.config import TrainConfig
from crossrank.train.loop import FitResult, Trainer, score


def _resolve_schema(path: str, fmt: Format, table_schema):
    from crossrank.data import criteo_schema, infer_schema

    if table_schema is not None:
        return table_schema
    if fmt == "criteo":
        return criteo_schema()
    try:
        return infer_schema(path, fmt)
    except ValueError as err:
        raise ValueError(f"{err}; give --schema or --label/--dense/--categorical") from None


def _open_rejects(on_bad_rows: OnBadRows, rejects_path: str | Path | None, out_dir: Path):
    from crossrank.data import RejectsLog

    if on_bad_rows != "skip":
        return None
    return RejectsLog(Path(rejects_path) if rejects_path else out_dir / "rejects.jsonl")


def _report_rejects(rejects) -> None:
    if rejects is not None and rejects.total:
        print(f"skipped {rejects.total} bad rows ({rejects.summary()}); see {rejects.path}")


def train_from_data(*, data: str | None, fmt: str | None, table_schema, config: TrainConfig,
                    encoder_options: EncoderOptions, out_dir: str | Path, on_bad_rows: OnBadRows = "error",
                    rejects_path: str | Path | None = None, resume: bool = False,
                    synthetic_rows: int = 50_000, verbose: bool = True) -> FitResult:
    """Train ``config.model`` on ``data`` (or synthetic clicks when None); see module doc."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    world = current_context()
    if data is None:
        data = str(out / "synthetic_train.tsv")
        synthetic = data

        def write() -> None:
            if not Path(synthetic).is_file() and world.is_main:
                write_default_synthetic(synthetic, synthetic_rows, seed=config.seed)
                print(f"no --data: wrote {synthetic_rows} synthetic Criteo-shaped rows to "
                      f"{synthetic}")

        run_agreed(write)  # the other ranks read the file rank 0 writes
        fmt = "criteo"
    fmt = infer_format(data, fmt)
    schema = _resolve_schema(data, fmt, table_schema)
    log = print if verbose and world.is_main else (lambda *a, **k: None)
    started = time.perf_counter()
    encoder, dataset = prepare_data(data=data, fmt=fmt, schema=schema, options=encoder_options,
                                    out=out, on_bad_rows=on_bad_rows, rejects_path=rejects_path,
                                    resume=resume, log=log)
    log(f"encoded {len(dataset):,} rows in {time.perf_counter() - started:.1f}s")
    n_valid = int(len(dataset) * config.valid_fraction)
    train = dataset.rows(0, len(dataset) - n_valid)
    valid = dataset.rows(len(dataset) - n_valid, len(dataset)) if n_valid else None
    model_schema = FeatureSchema(dense=encoder.dense_names, categorical=encoder.sparse_names,
                                 vocab_sizes=encoder.vocab_sizes,
                                 embedding_dim=config.embedding_dim)
    model = build_model(config.model, model_schema, config.model_config, task=schema.task)
    model.to(config.device)
    log(f"{config.model}: {model.num_parameters():,} parameters; "
          f"{len(train):,} training rows, {len(valid) if valid else 0:,} validation rows")
    trainer = Trainer(model, config, out_dir=out, verbose=verbose,
                      metadata={"table_schema": schema.to_dict(), "data_format": fmt})
    return trainer.fit(train, valid, resume=resume)


def _load(model_dir: str | Path):
    from crossrank.data import FeatureEncoder, TableSchema

    model, meta = load_model(model_dir)
    encoder = FeatureEncoder.load(Path(model_dir) / "encoder")
    return model, meta, encoder, TableSchema.from_dict(meta["table_schema"])


def _encoded(data: str, fmt: str | None, schema, encoder, on_bad_rows: OnBadRows, rejects):
    from crossrank.data import iter_tables

    fmt = infer_format(data, fmt)
    for table in iter_tables(data, fmt=fmt, schema=schema, on_bad_rows=on_bad_rows,
                             rejects=rejects):
        yield encoder.transform(table)


def evaluate_on_data(model_dir: str | Path, *, data: str, fmt: str | None = None,
                     on_bad_rows: OnBadRows = "error",
                     rejects_path: str | Path | None = None) -> dict[str, float]:
    """Metrics of a saved model on labelled ``data`` (over all rows at once)."""
    from crossrank.data import EncodedDataset
    from crossrank.train.metrics import compute_metrics

    model, _, encoder, schema = _load(model_dir)
    if schema.label is None:
        raise ValueError("the model's schema has no label column; nothing to evaluate against")
    rejects = _open_rejects(on_bad_rows, rejects_path, Path(model_dir))
    scores, labels = [], []
    for batch in _encoded(data, fmt, schema, encoder, on_bad_rows, rejects):
        s, y = score(model, EncodedDataset.from_batch(batch))
        scores.append(s)
        labels.append(y)
    _report_rejects(rejects)
    if not scores:
        raise ValueError(f"{data}: no rows to evaluate")
    return compute_metrics(model.task, np.concatenate(scores), np.concatenate(labels))


def _file_label(data: str, fmt: str | None, schema) -> str | None:
    """The label column if ``data`` has it, else None (unlabelled rows to score)."""
    from crossrank.data import infer_schema

    fmt = infer_format(data, fmt)
    if schema.label is None:
        return None
    found = infer_schema(data, fmt, label=schema.label) if fmt != "criteo" \
        else infer_schema(data, fmt)
    return schema.label if found.label is not None else None


def predict_on_data(model_dir: str | Path, *, data: str, out_path: str | Path,
                    fmt: str | None = None, on_bad_rows: OnBadRows = "error",
                    rejects_path: str | Path | None = None) -> int:
    """Write one score per input row, in input order (with the id column if any)."""
    import dataclasses

    model, _, encoder, schema = _load(model_dir)
    # Prediction input may or may not carry the label column: look at the file.
    read_schema = dataclasses.replace(schema, label=_file_label(data, fmt, schema))
    rejects = _open_rejects(on_bad_rows, rejects_path, Path(model_dir))
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.tmp")
    rows = 0
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        header_written = False
        for batch in _encoded(data, fmt, read_schema, encoder, on_bad_rows, rejects):
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
    _report_rejects(rejects)
    return rows


def explain_model_dir(model_dir: str | Path, *, data: str | None = None, fmt: str | None = None,
                      out_dir: str | Path | None = None, top_k: int = 20,
                      measure: str = "frobenius") -> str:
    """Field-pair importance of a saved model: heatmap PNG, JSON and a ranked table."""
    from crossrank.explain import explain_model

    model, meta, encoder, schema = _load(model_dir)
    x0 = None
    if data is not None:
        batches = list(_encoded(data, fmt, schema, encoder, "error", None))
        dense = torch.from_numpy(np.concatenate([b.dense for b in batches]))
        sparse = torch.from_numpy(np.concatenate([b.sparse for b in batches]))
        with torch.no_grad():
            x0 = model.cross_input(dense, sparse)
    out = Path(out_dir) if out_dir else Path(model_dir) / "explain"
    title = f"{meta['model']['name']} ({Path(model_dir).name})" + (f", data {Path(data).name}"
                                                                   if data else "")
    report = explain_model(model, out_dir=out, x0=x0, top_k=top_k, title=title,
                           measure=measure)
    atomic_write_json(out / "source.json", {"model_dir": str(model_dir), "data": data})
    tables = [report["table"]] + ([report["factorization_table"]]
                                  if report["factorization_table"] else [])
    return "\n\n".join(tables) + f"\n\nwritten to {out}: " + ", ".join(
        str(Path(p).name) for p in report["paths"])

