"""Training a run: from the files a RunConfig names to a model directory.

The training files are streamed twice (fit the encoder, then encode to a binary cache; shared
out by file among data-parallel ranks, see :mod:`crossrank.data.prepare`); the validation rows
are carved off the end; the model is trained and the directory written:
``model.safetensors`` + ``model.json`` (model spec, the resolved run configuration, table
schema, metrics, the SHA-256 of the weights and of the encoder's files), ``run.toml`` (the
same configuration as a file ``crossrank train --config`` takes), ``metrics.jsonl``,
``encoder/``, ``cache/`` and, for ``--resume``, the latest state. The directory is locked for
the run, and checked first (:mod:`crossrank.pipeline.run_dir`). With ``training.refit`` the
saved model is then retrained on every row for the best epoch count
(:mod:`crossrank.pipeline.refit`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crossrank.data.config import EncoderConfig
from crossrank.data.dataset import EncodedDataset
from crossrank.data.encoders import FeatureEncoder
from crossrank.data.files import infer_format
from crossrank.data.holdout import holdout
from crossrank.data.infer_report import InferredSchema
from crossrank.data.prepare import prepare_data
from crossrank.data.schema import TableSchema
from crossrank.data.synthetic_default import write_default_synthetic
from crossrank.distributed import current_context, run_agreed
from crossrank.models.registry import AUTO_MODEL
from crossrank.pipeline.auto_model import (
    auto_from_saved,
    auto_line,
    encoder_for,
    resolve_auto_model,
)
from crossrank.pipeline.config_file import dataclass_defaults, toml_text
from crossrank.pipeline.refit import (
    build_run_model,
    finished_first_pass,
    no_refit_because,
    record_first_pass,
    refit,
    refits,
)
from crossrank.pipeline.run_config import RunConfig, build_run_config
from crossrank.pipeline.run_dir import RunDirLock, check_resume, claim_run_dir, saved_run_config
from crossrank.pipeline.schema import resolve_table_schema, resolved_section
from crossrank.safe_io import atomic_write_bytes, sha256_file
from crossrank.train.averaging import resolve_ema_decay
from crossrank.train.checkpoint import CHECKSUMS
from crossrank.train.linear_path import path_c
from crossrank.train.loop import FitResult, Trainer
from crossrank.train.threads import torch_default_threads


def _synthetic_path(run: RunConfig, out: Path) -> str:
    """Write (rank 0) the default synthetic click log into ``out`` once; return its path."""
    world = current_context()
    path = out / "synthetic_train.tsv"

    def write() -> None:
        if not path.is_file() and world.is_main:
            write_default_synthetic(path, run.data.synthetic_rows, seed=run.training.seed)
            print(f"no data path: wrote {run.data.synthetic_rows} synthetic Criteo-shaped rows "
                  f"to {path}")

    run_agreed(write)  # the other ranks read the file rank 0 writes
    return str(path)


def train_run(run: RunConfig, out_dir: str | Path, *, resume: bool = False,
              overwrite: bool = False, verbose: bool = True) -> FitResult:
    """Train the model ``run`` describes on its data (synthetic clicks when it names none) and
    write the model directory ``out_dir``; see the module doc.

    ``out_dir`` is locked for the run: a second training into it stops with one line naming
    the holder. A fresh run refuses a directory that holds a model unless ``overwrite``;
    ``resume`` continues the run there and refuses a ``run`` whose options differ from the
    saved ones other than :data:`~crossrank.pipeline.run_dir.RESUMABLE`
    (:mod:`crossrank.pipeline.run_dir`).
    """
    out = Path(out_dir)
    world = current_context()
    log = print if verbose and world.is_main else (lambda *a, **k: None)
    lock = RunDirLock(out) if world.is_main else None  # the ranks share one directory

    def claim() -> None:
        if lock is not None:
            stale = claim_run_dir(out, lock, resume=resume, overwrite=overwrite)
            if stale:
                log(f"took over the lock left in {out} by {stale}, which has ended")

    try:
        run_agreed(claim)
        return _train(run, out, resume=resume, verbose=verbose, log=log)
    finally:
        if lock is not None:
            lock.release()


def _train(run: RunConfig, out: Path, *, resume: bool, verbose: bool,
           log: Callable[..., Any]) -> FitResult:
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_run_data(run, out, resume=resume, log=log)
    if not refits(run, len(prepared.dataset)):
        why = no_refit_because(run, len(prepared.dataset))
        if run.training.refit and run.training.valid_fraction > 0 and why:
            log(f"no refit: {why}")  # asked for, and a validation split asked for: say why
        return fit_prepared(run, prepared, out, resume=resume, verbose=verbose, log=log)
    # the first pass chooses the epochs (skipped when a resumed run's had ended), then the
    # refit (crossrank.pipeline.refit), afresh after a first pass that ran (again)
    first = finished_first_pass(out, run.training) if resume else None
    refit_resume = first is not None
    if first is None:
        first = fit_prepared(run, prepared, out, resume=resume, verbose=verbose, log=log)
        record_first_pass(out, first, run.training)
    resolved = prepared.resolved  # run with its data, schema and training resolved
    metadata = _model_metadata(resolved, prepared, out if current_context().is_main else None)
    return refit(resolved, prepared.schema, prepared.encoder, prepared.dataset, out, first,
                 metadata=metadata, resume=refit_resume,
                 verbose=verbose, log=log)


@dataclass(frozen=True)
class PreparedData:
    """A run's data encoded: the run with its format and schema resolved, the table schema
    (and the inferred one, when inference named columns), the encoder and the cache."""

    resolved: RunConfig
    schema: TableSchema
    inferred: InferredSchema | None
    encoder: FeatureEncoder
    dataset: EncodedDataset


def prepare_run_data(run: RunConfig, out: Path, *, resume: bool = False,
                     log: Callable[..., Any] = print) -> PreparedData:
    """Resolve the schema of ``run``'s data and encode it into ``out/encoder`` and
    ``out/cache`` (opened instead with ``resume`` when they are there). Only the data, schema
    and encoder sections of ``run`` are read (and the training seed for synthetic data)."""
    world = current_context()
    data = run.data.path or _synthetic_path(run, out)
    fmt = infer_format(data, run.data.format if run.data.path else "criteo")
    schema, inferred = resolve_table_schema(run.schema, data, fmt)
    if inferred is not None:
        log("schema inferred (name columns with --dense/--categorical/--exclude, or give "
            "--schema):\n" + inferred.format_table())
    base = run.replace(data=dataclasses.replace(run.data, format=fmt),
                       schema=resolved_section(run.schema, schema))
    if resume and world.is_main:  # the family the saved run's auto model became
        base = base.replace(model=auto_from_saved(base.model, saved_run_config(out)))
    base = base.replace(encoder=encoder_for(base.encoder, base.model.name))
    resolved = with_resolved_training(base, schema)
    if resume:  # before the cache is reused: it was encoded with the saved options
        run_agreed(lambda: check_resume(out, resolved.to_dict()) if world.is_main else None)
    started = time.perf_counter()

    def encode(options: EncoderConfig, again: bool = False) -> tuple[FeatureEncoder,
                                                                     EncodedDataset]:
        return prepare_data(data=data, fmt=fmt, schema=schema, options=options, out=out,
                            on_bad_rows=run.data.on_bad_rows, rejects_path=run.data.rejects,
                            resume=resume and not again, log=log,
                            keep_parsed_mb=run.data.keep_parsed_mb, report_rejects=not again)

    encoder, dataset = encode(resolved.encoder)
    log(f"encoded {len(dataset):,} rows in {time.perf_counter() - started:.1f}s")
    if resolved.model.name == AUTO_MODEL:  # decided by the rows: the run names its family
        base = base.replace(model=resolve_auto_model(resolved.model, len(dataset),
                                                     len(schema.labels)))
        base = base.replace(encoder=encoder_for(base.encoder, base.model.name))
        if base.encoder != resolved.encoder:  # the linear model's vocabulary: a few thousand
            encoder, dataset = encode(base.encoder, again=True)  # rows at most, again
        resolved = with_resolved_training(base, schema)
        line = auto_line(base.model, len(dataset))
        if line:
            log(line)
    return PreparedData(resolved, schema, inferred, encoder, dataset)


def fit_prepared(run: RunConfig, prepared: PreparedData, out: Path | None, *,
                 resume: bool = False, verbose: bool = True, log: Callable[..., Any] = print,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None,
                 fold: int = 0) -> FitResult:
    """Train the model and training sections of ``run`` on ``prepared`` data (encoded with
    the data, schema and encoder sections ``run`` has), the last ``training.valid_fraction``
    of its rows held out (``fold`` k > 0: the k-th block of that size before them, the rows
    after it trained on too, as a tuning trial's fold does: :mod:`crossrank.data.holdout`);
    write the model directory ``out`` (None: no file, as a tuning trial runs). ``on_epoch``:
    see :class:`~crossrank.train.loop.Trainer`."""
    cfg, world, schema, encoder = run.training, current_context(), prepared.schema, prepared.encoder
    # the user's count, else torch's own as the process started (read before this process's
    # first run sets any): an earlier run (a tuning trial) may have left another count behind
    starting = torch_default_threads()
    torch.set_num_threads(cfg.threads or starting)
    torch.manual_seed(cfg.seed)
    run = run.replace(model=resolve_auto_model(run.model, len(prepared.dataset),
                                               len(schema.labels)))
    resolved = with_resolved_training(  # the encoder as prepared (min_count resolved)
        run.replace(data=prepared.resolved.data, schema=prepared.resolved.schema,
                    encoder=prepared.resolved.encoder), schema)
    train, valid = holdout(prepared.dataset, cfg.valid_fraction, fold)
    model = build_run_model(run, schema, encoder)
    averaged = resolved.training.ema_decay
    by_task = (f"; validating and saving the weight average, decay {averaged} (the default "
               "for regression; --ema-decay 0 for none)"
               if run.training.ema_decay is None and averaged else "")
    log(f"{run.model.name}: {model.num_parameters():,} parameters; "
        f"{len(train):,} training rows, {len(valid) if valid else 0:,} validation rows{by_task}")
    if run.model.name == "linear" and not valid:  # nothing picks C: the path runs to its end
        log(f"warning: no validation rows, so nothing chooses the linear model's L2: it is the "
            f"path's last point (C {path_c(model, cfg.epochs - 1):.3g}, barely penalized); "
            "give --valid-fraction, or --epochs to stop the path sooner")
    if world.is_main and out is not None:
        write_run_toml(resolved, out / "run.toml")
    metadata = _model_metadata(resolved, prepared, out if world.is_main else None)
    trainer = Trainer(model, cfg, out_dir=out, verbose=verbose, on_epoch=on_epoch,
                      task_names=schema.labels, metadata=metadata)
    return trainer.fit(train, valid, resume=resume)


def with_resolved_training(run: RunConfig, schema: TableSchema) -> RunConfig:
    """``run`` with the training options the data's task decides written down: the weight
    average (``training.ema_decay`` none -> the task's decay, or 0 for none; none for the
    linear model, which is solved, not stepped), so that ``run.toml`` and ``model.json`` say
    what was done and ``crossrank train --config run.toml`` does it again whatever a later
    version's default."""
    ema_decay = run.training.ema_decay if run.model.name == "linear" else \
        resolve_ema_decay(run.training.ema_decay, schema.tasks)
    ema_decay = ema_decay or 0.0
    return run.replace(training=dataclasses.replace(run.training, ema_decay=ema_decay))


def _model_metadata(resolved: RunConfig, prepared: PreparedData,
                    out: Path | None) -> dict[str, Any]:
    """The entries of ``model.json`` besides the model and its training: the run's resolved
    configuration, schemas and the SHA-256 of the files predict, evaluate and explain read
    (those of ``out``'s encoder; none without ``out``)."""
    checksums = _encoder_checksums(out / "encoder") if out is not None else {}
    inferred = prepared.inferred
    return {"table_schema": prepared.schema.to_dict(), "data_format": resolved.data.format,
            "negative_sampling_rate": resolved.data.negative_sampling_rate,
            "run_config": resolved.to_dict(), CHECKSUMS: checksums,
            "inferred_schema": inferred.to_dict() if inferred else None}


def _encoder_checksums(encoder_dir: Path) -> dict[str, str]:
    """``{"encoder/NAME": SHA-256}`` of the encoder's files (temporary names left out)."""
    return {f"{encoder_dir.name}/{p.name}": sha256_file(p) for p in sorted(encoder_dir.iterdir())
            if p.is_file() and not p.name.startswith(".")}


def write_run_toml(run: RunConfig, path: Path, *, header: str | None = None) -> None:
    """The run's configuration as a TOML file that ``crossrank train --config`` takes
    (``header``: its comment lines, by default how to use it)."""
    defaults = dataclass_defaults(build_run_config({"model": {"name": run.model.name}}))
    defaults["model"] = build_run_config({"model": {"name": run.model.name}}).model.to_dict()
    header = header or (f"# crossrank run configuration: crossrank train --config {path.name} "
                        "[--set section.key=value ...]")
    atomic_write_bytes(path, toml_text(run.to_dict(), defaults, header=header).encode())
