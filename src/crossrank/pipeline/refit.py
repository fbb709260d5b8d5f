"""The refit (``training.refit``, on by default): once early stopping on the validation rows
has chosen the best epoch E, a fresh model (the same seed, so the same initial weights and the
same epoch orders) is trained on every training row, the validation rows too, for exactly E
epochs, and that model is saved. Without validation rows (``valid_fraction`` 0, or too few
rows to hold one out) nothing chose E, and there is no refit.

The first pass runs as any run does, into ``OUT`` (its ``metrics.jsonl``, checkpoints and best
model); when it ends, ``OUT/refit/first_pass.json`` records what it chose. The refit trains into
``OUT/refit/`` (its own ``metrics.jsonl`` and resume state), so ``OUT/model.safetensors`` stays
the first pass's best model until the refit is done and replaces it, with ``model.json``
saying so (``"refit"``: the epochs, the rows, the first pass's validation metrics; its
``"metrics"`` are empty: the refit model has no held-out validation metric). A run killed
during the refit and resumed (``--resume``) skips the first pass and continues the refit from
its last finished epoch; a resume that changes ``epochs`` or ``patience`` continues the first
pass instead, then refits afresh. The result equals a run on all the rows for E epochs
(``--valid-fraction 0 --epochs E``), bit for bit.

Under DDP every rank takes the same decisions (the first pass's best epoch is agreed, rank
0's files decide whether a resumed run's first pass had ended) and only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from crossrank.data.dataset import EncodedDataset
from crossrank.data.encoders import FeatureEncoder
from crossrank.data.holdout import holdout
from crossrank.data.schema import TableSchema
from crossrank.distributed import agree, broadcast_float, current_context, run_agreed
from crossrank.errors import ModelFileError
from crossrank.models import FeatureSchema, build_model
from crossrank.models.base import RankingModel
from crossrank.pipeline.run_config import RunConfig
from crossrank.pipeline.run_dir import REFIT_DIR
from crossrank.safe_io import read_json_object
from crossrank.train.checkpoint import atomic_write_json, save_model
from crossrank.train.config import TrainConfig
from crossrank.train.loop import FitResult, Trainer

FIRST_PASS = "first_pass.json"
NO_VALID_METRIC = ("trained on the validation rows too: no held-out validation metric; "
                   "first_pass holds the validation metrics that chose the epochs")


def build_run_model(run: RunConfig, schema: TableSchema, encoder: FeatureEncoder) -> RankingModel:
    """The model ``run`` describes for data encoded by ``encoder``, on the run's
    device; its initial weights come from torch's generator as it stands (seed it first)."""
    model_schema = FeatureSchema(dense=encoder.dense_names, categorical=encoder.sparse_names,
                                 vocab_sizes=encoder.vocab_sizes,
                                 embedding_dim=run.model.embedding_dim,
                                 multi_valued=schema.multi_valued_names,
                                 multi_valued_sizes=encoder.lists.sizes,
                                 multi_valued_widths=encoder.lists.widths,
                                 pooling=tuple(m.pooling for m in schema.multi_valued))
    model = build_model(run.model.name, model_schema, run.model.config, task=schema.tasks)
    return model.to(run.training.device)


def refits(run: RunConfig, rows: int) -> bool:
    """Whether ``run`` refits on data of ``rows`` rows: ``training.refit``, a validation split
    that holds out a row (without one, early stopping chose nothing to refit for), and at most
    ``training.refit_max_rows`` rows."""
    return bool(run.training.refit) and no_refit_because(run, rows) is None


def no_refit_because(run: RunConfig, rows: int) -> str | None:
    """Why ``run`` does not refit on ``rows`` rows even with ``training.refit`` on (None:
    nothing stops it), for the log."""
    cfg = run.training
    if int(rows * cfg.valid_fraction) < 1:
        return "no validation split" if cfg.valid_fraction <= 0 else \
            "the validation split holds out no row (too few rows)"
    if cfg.refit_max_rows is not None and rows > cfg.refit_max_rows:
        return (f"{rows:,} rows > training.refit_max_rows {cfg.refit_max_rows:,} (a second "
                "training for the validation split's rows; --refit-max-rows none refits anyway)")
    return None


def finished_first_pass(out: Path, cfg: TrainConfig) -> FitResult | None:
    """The first pass recorded in ``out`` when a resumed run's had ended with the same
    ``epochs`` and ``patience`` as ``cfg``, else None: a resume that gives more
    epochs continues the first pass, then refits afresh. Rank 0 reads it; under DDP every rank
    takes rank 0's answer (the other ranks' record holds the best epoch only: they write no
    file)."""
    world = current_context()
    first: FitResult | None = None
    problem: Exception | None = None
    path = out / REFIT_DIR / FIRST_PASS
    if world.is_main and path.is_file():
        try:
            record = read_json_object(path)
            if [record["epochs"], record["patience"]] == [cfg.epochs, cfg.patience]:
                first = FitResult(**record["fit"])
        except (KeyError, TypeError) as err:
            problem = ModelFileError(f"{path}: not a first-pass record ({err!r}); start a new "
                                     "run")
        except ModelFileError as err:
            problem = err
    agree(problem)  # every rank raises rank 0's problem, or none does
    epoch = int(broadcast_float(float(first.best_epoch) if first is not None else -1.0))
    if first is None and epoch > 0:
        first = FitResult(best_epoch=epoch, best_metrics={})
    return first


def record_first_pass(out: Path, first: FitResult, cfg: TrainConfig) -> None:
    """Write (rank 0) ``out/refit/first_pass.json``, the first pass's result and the
    ``epochs`` and ``patience`` of ``cfg`` it ran with: a resumed run's refit starts from it."""
    if current_context().is_main:
        (out / REFIT_DIR).mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / REFIT_DIR / FIRST_PASS, {
            "fit": dataclasses.asdict(first), "epochs": cfg.epochs, "patience": cfg.patience})


def refit(run: RunConfig, schema: TableSchema, encoder: FeatureEncoder, dataset: EncodedDataset,
          out: Path, first: FitResult, *, metadata: dict[str, Any], resume: bool,
          verbose: bool, log: Callable[..., Any]) -> FitResult:
    """Train the refit model of ``run`` on every row of ``dataset`` for ``first.best_epoch``
    epochs into ``out/refit``, then save it as ``out``'s model (``metadata``: the entries of
    ``model.json`` the first pass wrote). Returns ``first`` marked ``refit``."""
    cfg = run.training
    epochs = first.best_epoch
    world = current_context()
    if not refits(run, len(dataset)):
        raise ValueError(f"refit() of a run that does not refit: training.refit "
                         f"{cfg.refit}, valid_fraction {cfg.valid_fraction} of {len(dataset)} rows")
    train, _ = holdout(dataset, 0.0)  # every row, as a run with --valid-fraction 0 sees them
    n_valid = len(dataset) - len(holdout(dataset, cfg.valid_fraction)[0])
    # exactly E epochs: patience E never stops it; a schedule spans these E epochs
    refit_cfg = dataclasses.replace(cfg, epochs=epochs, patience=epochs)
    where = out / REFIT_DIR
    # rank 0's files decide (the Trainer then checks every rank reads the same state)
    continuing = resume and bool(broadcast_float(
        float(world.is_main and (where / "state.json").is_file())))
    log(f"refit: a fresh model (seed {cfg.seed}) trained on all {len(train):,} rows (the "
        f"{n_valid:,} validation rows too) for {epochs} epoch(s), the count early stopping "
        "chose" + (" (resumed)" if continuing else ""))
    torch.manual_seed(cfg.seed)  # the first pass's initial weights
    model = build_run_model(run, schema, encoder)
    # keep_best=False: the model ends with the last epoch's weights (its training loss picks
    # nothing); the refit directory's own model.* files are that trainer's by-products
    trainer = Trainer(model, refit_cfg, out_dir=where, verbose=verbose, keep_best=False,
                      task_names=schema.labels)
    trainer.fit(train, None, resume=continuing)

    def save() -> None:
        if not world.is_main:
            return
        save_model(out, model, extra={
            **metadata, "epoch": epochs, "metrics": {}, "train_config": cfg.to_dict(),
            "world_size": world.world_size, "never_improved": first.never_improved,
            "refit": {"epochs": epochs, "rows": len(train), "validation_rows": n_valid,
                      "note": NO_VALID_METRIC,
                      "first_pass": {"best_epoch": first.best_epoch,
                                     "valid_metrics": first.best_metrics,
                                     "stopped_early": first.stopped_early}}})
        for name in ("model.json", "model.safetensors"):
            (where / name).unlink(missing_ok=True)

    run_agreed(save)  # the ranks end together, after rank 0's files are written
    log(f"refit done: {out / 'model.safetensors'} has no held-out validation metric (its "
        "validation rows were trained on); the validation metrics shown are the first pass's")
    return dataclasses.replace(first, refit=True)
