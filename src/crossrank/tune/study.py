"""A tuning study: Optuna's TPE sampler over a :class:`~crossrank.tune.space.SearchSpace`,
each trial one training run on the training data, scored by its best epoch's validation
metric (the run's ``training.monitor``), pruned from its per-epoch validation metric.

Only the training data is read: every trial holds out the last ``training.valid_fraction``
of its rows for validation, as ``crossrank train`` does, so the value a trial reports is the
value ``crossrank train --config best.toml`` prints for the same options and seed.

With ``folds`` K > 1 a trial trains K times (:mod:`crossrank.data.holdout`): fold 0 on
exactly ``crossrank train``'s split, fold k on all rows but the k-th block of
``valid_fraction`` before the last, validating on that block. Its value is the mean of the
folds' best-epoch values: the mean over K disjoint blocks is less the noise of one small
split, which trials otherwise learn to fit. Pruning reads fold 0's per-epoch values (fold 0
runs first, so a pruned trial trains no other fold); ``crossrank train --config best.toml``
prints fold 0's value.

``OUT`` holds ``study.db`` (Optuna's SQLite storage: every finished trial is there the
moment it ends), ``trials.csv`` and ``best.toml`` (rewritten after each trial),
``history.png`` and ``importance.png`` (at the end), and ``data/`` (the training data
encoded once per encoder configuration and reused by every trial with it; encoded afresh
by each process). The directory is locked while a study runs. Running the same command
again continues the study: trials left running by a process that was killed are marked
failed (they do not count), finished ones are kept, and trials run until ``trials``
complete or pruned trials are in the study.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank.data.holdout import max_folds
from crossrank.data.readers import list_shards
from crossrank.errors import ConfigError, DivergedError
from crossrank.models.registry import AUTO_LINEAR_ROWS, AUTO_MODEL
from crossrank.pipeline.run_config import RunConfig, build_run_config
from crossrank.pipeline.run_dir import RunDirLock
from crossrank.pipeline.train_run import PreparedData, fit_prepared, prepare_run_data
from crossrank.train.multitask_metrics import higher_is_better, resolve_monitor
from crossrank.tune.refine import refine
from crossrank.tune.report import write_best_toml, write_plots, write_trials_csv
from crossrank.tune.space import SearchSpace, as_layer, build_space, tuned_family

STUDY_NAME = "crossrank-tune"
MAX_FAILED_IN_A_ROW = 5
# training options that do not change a trial's result: a study may continue with others
_NOT_COMPARED = ("progress", "threads")


@dataclass(frozen=True)
class TuneResult:
    """What a study holds at the end of :func:`tune`: finished trials (complete or pruned),
    the best trial's number and value (None: no trial completed), and the files written."""

    finished: int
    best_number: int | None
    best_value: float | None
    monitor: str
    files: tuple[Path, ...]
    best_folds: tuple[float, ...] = ()  # the best trial's value on each fold, fold 0 first


def parse_duration(text: str | float | None) -> float | None:
    """Seconds in ``30m``, ``1h30m``, ``90s``, ``45`` (seconds) or a number; None stays None.

    Example:
        >>> parse_duration("1h30m"), parse_duration("90s"), parse_duration("2.5")
        (5400.0, 90.0, 2.5)
    """
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
                         r"(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or parts is None:
        raise ConfigError(f"--timeout takes a duration such as 30m, 1h30m, 90s or 45, "
                          f"got {text!r}")
    h, m, s = (float(x) if x else 0.0 for x in parts.groups())
    seconds = 3600 * h + 60 * m + s
    if seconds <= 0:
        raise ConfigError(f"--timeout must be positive, got {text!r}")
    return seconds


class _DataCache:
    """The training data encoded once per (data, schema, encoder) configuration, in
    ``root/<key>``; shared by the trials (threads) of this process."""

    def __init__(self, root: Path, log: Callable[..., Any]) -> None:
        self.root, self.log = root, log
        self.ready: dict[str, PreparedData] = {}
        self.lock = threading.Lock()

    def get(self, run: RunConfig) -> PreparedData:
        sections = run.to_dict()
        parts = {"data": sections["data"], "schema": sections["schema"],
                 "encoder": sections["encoder"],
                 "seed": None if run.data.path else run.training.seed}  # synthetic data's seed
        key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
        with self.lock:
            if key not in self.ready:
                quiet = bool(self.ready)  # the schema report etc. once, for the first
                self.ready[key] = prepare_run_data(
                    run, self.root / key, log=(lambda *a, **k: None) if quiet else self.log)
            return self.ready[key]


def _fingerprint(run: RunConfig, space: SearchSpace, folds: int) -> dict[str, Any]:
    """What a continued study must share with the one it continues: the base run (options
    that change no result left out), the search space, the folds and the data files' sizes
    and times."""
    base = run.to_dict()
    base["training"] = {k: v for k, v in base["training"].items() if k not in _NOT_COMPARED}
    files = [] if run.data.path is None else [
        [str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in list_shards(run.data.path)]
    return json.loads(json.dumps({"run": base, "space": space.to_dict(), "data": files,
                                  "folds": folds}))


def tune(base: Mapping[str, Any], tune_table: Mapping[str, Any] | None, out: str | Path, *,
         trials: int, timeout: float | None = None, jobs: int = 1, folds: int = 1,
         refine_trials: int = 0, overwrite: bool = False, pruner: Any = None,
         log: Callable[[str], Any] | None = None) -> TuneResult:
    """Run (or continue) the study in ``out`` until ``trials`` trials have finished or
    ``timeout`` seconds have passed; see the module doc.

    Args:
        base: the run configuration's layers as plain data (config file, flags, ``--set``),
            which every trial starts from; its ``training.seed`` seeds every trial and the
            sampler.
        tune_table: the config file's ``[tune]`` table (:func:`~crossrank.tune.space.build_space`).
        jobs: trials at once (threads of this process; trials under way when ``trials``
            is reached finish too, and are kept).
        folds: validation splits per trial (module doc); at most as many blocks of
            ``training.valid_fraction`` as the data holds.
        refine_trials: after the search (``trials``, ``timeout``), at most this many trials
            that change one choice of the best trial at a time (:mod:`crossrank.tune.refine`).
        overwrite: start a new study where ``out`` holds one.
        pruner: an Optuna pruner (default: median pruning from the second epoch on, once five
            trials have finished).
    """
    import optuna

    log = log or _print
    given = base.get("model") or {}  # auto, no option: what crossrank train resolves by rows
    auto = given.get("name", AUTO_MODEL) == AUTO_MODEL and not set(given) - {"name"}
    base = tuned_family(base)
    run = build_run_config(base)
    space = build_space(tune_table, base)  # every entry checked before any work
    if not run.training.valid_fraction > 0:
        raise ConfigError("tune scores each trial on the validation split: "
                          "training.valid_fraction must be > 0")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"--trials must be a positive integer, got {trials!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be a positive integer, got {jobs!r}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
        raise ConfigError(f"--folds must be a positive integer, got {folds!r}")
    if isinstance(refine_trials, bool) or not isinstance(refine_trials, int) or refine_trials < 0:
        raise ConfigError(f"--refine must be an integer >= 0, got {refine_trials!r}")
    out = Path(out)
    lock = RunDirLock(out)
    lock.acquire()
    try:
        if overwrite:
            for name in ("study.db", "study.db-journal", "trials.csv", "best.toml",
                         "history.png", "importance.png"):
                (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "data", ignore_errors=True)  # encoded afresh by each process
        data = _DataCache(out / "data", log)
        first = data.get(run)  # the data's schema, hence the task and the metric
        if auto and len(first.dataset) < AUTO_LINEAR_ROWS and len(first.schema.labels) == 1:
            log(f"the default model is tuned as dcn; on these {len(first.dataset):,} rows "
                f"(fewer than {AUTO_LINEAR_ROWS:,}) crossrank train's default is the linear "
                "model: --model linear tunes that")
        if int(len(first.dataset) * run.training.valid_fraction) < 1:
            raise ConfigError(f"training.valid_fraction {run.training.valid_fraction} of "
                              f"{len(first.dataset)} rows holds out no row to validate on")
        fit = max_folds(len(first.dataset), run.training.valid_fraction)
        if folds > fit:
            raise ConfigError(f"--folds {folds}: {len(first.dataset)} rows hold {fit} disjoint "
                              f"validation blocks of training.valid_fraction "
                              f"{run.training.valid_fraction}; give --folds <= {fit} or a "
                              "smaller --valid-fraction")
        monitor = resolve_monitor(run.training.monitor, first.schema.tasks, first.schema.labels)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(f"sqlite:///{(out / 'study.db').resolve()}")
        study = optuna.create_study(
            storage=storage, study_name=STUDY_NAME,
            direction="maximize" if higher_is_better(monitor) else "minimize",
            load_if_exists=True,
            pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))
        _check_same_study(study, _fingerprint(run, space, folds), out)
        _fail_left_running(study, storage, log)
        if not study.trials:  # a new study: the base configuration first
            start = space.base_params(run)
            if start:
                study.enqueue_trial(start)
                log("the first trial: the base configuration" + (
                    "" if len(start) == len(space.params) else
                    f" where the space holds its values ({len(start)} of "
                    f"{len(space.params)} entries; the others drawn)"))
        # seeded by the trials so far too: a continued study draws new points, not trial 0's
        study.sampler = optuna.samplers.TPESampler(seed=run.training.seed + len(study.trials))
        done = _finished(study)
        log(f"tuning {run.model.name} on valid {monitor} ({study.direction.name.lower()}"
            + (f", mean of {folds} folds" if folds > 1 else "") + f"), {trials} trials"
            + (f", {done} already in {out / 'study.db'}" if done else "")
            + "; search space:\n" + space.describe())
        runner = _Runner(study, space, base, data, first, monitor, trials, out, log, folds)
        if done < trials:
            runner.optimize(timeout=timeout, jobs=jobs)
        if refine_trials:
            refine(study, space, refine_trials, runner.run_more, log)
        files = runner.write_outputs(plots=True)
    finally:
        lock.release()
    best = _best(study)
    return TuneResult(_finished(study), best.number if best else None,
                      best.value if best else None, monitor, files,
                      tuple(_fold_values(best)) if best else ())


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _best(study: Any) -> Any:
    from optuna.trial import TrialState

    return study.best_trial if study.get_trials(deepcopy=False,
                                                states=(TrialState.COMPLETE,)) else None


def _check_same_study(study: Any, fingerprint: dict[str, Any], out: Path) -> None:
    saved = study.user_attrs.get("fingerprint")
    if saved is None:
        study.set_user_attr("fingerprint", fingerprint)
        return
    saved = {"folds": 1, **saved}  # a study from before --folds had one
    changed = [what for key, what in (("run", "the run configuration"),
                                      ("space", "the search space"), ("data", "the data files"),
                                      ("folds", "--folds"))
               if saved.get(key) != fingerprint[key]]
    if changed:
        raise ConfigError(f"{out / 'study.db'} holds a study with other {' and '.join(changed)}"
                          f" than these; give another --out, or --overwrite to start anew")


def _fail_left_running(study: Any, storage: Any, log: Callable[[str], Any]) -> None:
    """Mark failed the trials a killed process left running: this process holds the lock on
    the study's directory, so no other is running them."""
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        log(f"trial #{trial.number} was left running by an interrupted study: marked failed")


class _Runner:
    """The objective and the per-trial callback of one :func:`tune` call."""

    def __init__(self, study: Any, space: SearchSpace, base: Mapping[str, Any],
                 data: _DataCache, first: PreparedData, monitor: str, trials: int, out: Path,
                 log: Callable[..., Any], folds: int) -> None:
        self.study, self.space, self.base, self.data, self.first = study, space, base, data, first
        self.monitor, self.trials, self.out, self.log = monitor, trials, out, log
        self.folds = folds
        self.started = time.perf_counter()
        self.failed_in_a_row = 0
        self.finished = _finished(study)  # counted here: with --jobs, two may end at once
        self.lock = threading.Lock()

    def run_config(self, values: Mapping[str, Any]) -> RunConfig:
        return build_run_config(self.base, as_layer(values))

    def optimize(self, *, timeout: float | None = None, jobs: int = 1,
                 trials: int | None = None) -> None:
        self.study.optimize(self.objective, timeout=timeout, n_jobs=jobs, n_trials=trials,
                            catch=(ConfigError, DivergedError, ValueError),
                            callbacks=[self.after_trial])

    def run_more(self, count: int) -> None:
        """``count`` more trials (the refinement's, enqueued), counted in the progress lines."""
        self.trials = self.finished + count
        self.optimize(trials=count)

    def objective(self, trial: Any) -> float:
        import optuna

        try:
            run = self.run_config(self.space.suggest(trial))
            trial_run = run.replace(training=_quiet(run.training))

            def on_epoch(record: dict[str, Any]) -> None:
                trial.report(record["valid"][self.monitor], record["epoch"])
                if trial.should_prune():
                    trial.set_user_attr("epochs", record["epoch"])
                    raise optuna.TrialPruned()

            values, epochs = [], []
            for fold in range(self.folds):  # fold 0 first: the pruner reads its epochs
                result = fit_prepared(trial_run, self.data.get(run), None, verbose=False,
                                      log=lambda *a, **k: None,
                                      on_epoch=on_epoch if fold == 0 else None, fold=fold)
                values.append(result.best_metrics[self.monitor])
                epochs.append(result.best_epoch)
                if fold == 0:
                    trial.set_user_attr("epochs", len(result.history))
        except (ConfigError, DivergedError, ValueError) as err:
            trial.set_user_attr("error", str(err).splitlines()[0])
            raise
        trial.set_user_attr("best_epoch", epochs[0])
        if self.folds > 1:
            trial.set_user_attr("folds", values)
            trial.set_user_attr("fold_best_epochs", epochs)
        return sum(values) / len(values)

    def after_trial(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        with self.lock:
            self.finished += trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
            done = self.finished
            best = _best(study)
            took = trial.duration.total_seconds() if trial.duration else 0.0
            elapsed = time.strftime("%H:%M:%S", time.gmtime(time.perf_counter() - self.started))
            head = f"trial {done}/{self.trials} (#{trial.number})"
            if trial.state == TrialState.FAIL:
                self.failed_in_a_row += 1
                what = f"failed: {trial.user_attrs.get('error', 'see the log above')}"
            else:
                self.failed_in_a_row = 0
                value = trial.value if trial.state == TrialState.COMPLETE else \
                    trial.intermediate_values.get(trial.last_step)
                what = ("pruned at epoch " + str(trial.last_step)
                        if trial.state == TrialState.PRUNED else "complete") + \
                    (f": valid {self.monitor} {value:.5f}" if value is not None else "")
                if "folds" in trial.user_attrs:
                    what += " (folds " + ", ".join(f"{v:.4f}" for v in
                                                   trial.user_attrs["folds"]) + ")"
            best_text = f"best {best.value:.5f} (#{best.number})" if best else "no best yet"
            self.log(f"{head} {what} | {best_text} | {took:.1f}s | elapsed {elapsed}")
            self.write_outputs(plots=False)
            if done >= self.trials:
                study.stop()
            elif self.failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                self.log(f"stopping: {MAX_FAILED_IN_A_ROW} trials in a row failed")
                study.stop()

    def write_outputs(self, *, plots: bool) -> tuple[Path, ...]:
        files = [write_trials_csv(self.study, self.space, self.out / "trials.csv",
                                  folds=self.folds)]
        best = _best(self.study)
        if best is not None:
            run = self.run_config(self.space.decode(best.params))
            run = run.replace(data=self.first.resolved.data, schema=self.first.resolved.schema)
            files.append(write_best_toml(run, self.out / "best.toml", number=best.number,
                                         value=best.value, monitor=self.monitor,
                                         folds=_fold_values(best)))
        if plots:
            files += write_plots(self.study, self.out, monitor=self.monitor)
        return tuple(files)


def _fold_values(trial: Any) -> list[float]:
    """A completed trial's value on each fold (one fold: its value)."""
    return list(trial.user_attrs.get("folds", [trial.value]))


def _print(text: str) -> None:
    print(text, flush=True)


def _quiet(training: Any) -> Any:
    import dataclasses

    return dataclasses.replace(training, progress=False)
