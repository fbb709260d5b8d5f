"""What a study leaves for its user: the table of trials, the best configuration as a run
config, and two plots (matplotlib, Agg canvas: files only, never a window)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crossrank.pipeline.run_config import RunConfig
from crossrank.pipeline.train_run import write_run_toml
from crossrank.safe_io import atomic_path, atomic_write_text
from crossrank.tune.refine import REFINEMENT
from crossrank.tune.space import SearchSpace

TRIAL_COLUMNS = ("number", "state", "value", "epochs", "best_epoch", "duration_s")


def write_trials_csv(study: Any, space: SearchSpace, path: Path, *, folds: int = 1) -> Path:
    """One row per trial: number, state (COMPLETE, PRUNED, FAIL, RUNNING), value (the best
    epoch's validation metric, with ``folds`` > 1 the mean over the folds; a pruned trial's
    last one on fold 0), epochs trained and best epoch (fold 0), seconds, with ``folds`` > 1
    each fold's value (``fold_0`` ...: a completed trial's), then each searched option's value
    (lists as JSON), "yes" for a trial of ``--refine`` (:mod:`crossrank.tune.refine`), and a
    failed trial's error."""
    keys = [p.key for p in space.params]
    fold_columns = [f"fold_{k}" for k in range(folds)] if folds > 1 else []
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([*TRIAL_COLUMNS, *fold_columns, *keys, REFINEMENT, "error"])
    for trial in study.get_trials(deepcopy=False):
        value = trial.value if trial.value is not None else (
            trial.intermediate_values.get(trial.last_step) if trial.last_step is not None
            else None)
        params = space.decode(trial.params) if set(keys) <= set(trial.params) else {}
        writer.writerow([
            trial.number, trial.state.name, "" if value is None else repr(float(value)),
            trial.user_attrs.get("epochs", ""), trial.user_attrs.get("best_epoch", ""),
            f"{trial.duration.total_seconds():.2f}" if trial.duration else "",
            *_fold_cells(trial.user_attrs.get("folds"), len(fold_columns)),
            *(_cell(params[k]) if k in params else "" for k in keys),
            "yes" if trial.user_attrs.get(REFINEMENT) else "", trial.user_attrs.get("error", "")])
    atomic_write_text(path, text.getvalue())
    return path


def _fold_cells(values: list[float] | None, columns: int) -> list[str]:
    """A trial's per-fold values (none for a pruned or failed trial: empty cells)."""
    if not values or len(values) != columns:
        return [""] * columns
    return [repr(float(v)) for v in values]


def _cell(value: Any) -> str:
    if value is None:
        return "none"
    return json.dumps(value) if isinstance(value, list | tuple) else str(value)


def write_best_toml(run: RunConfig, path: Path, *, number: int, value: float,
                    monitor: str, folds: Sequence[float] = ()) -> Path:
    """The best trial's run configuration, which ``crossrank train --config`` takes
    (``folds``: the trial's value on each fold, when it had more than one)."""
    if len(folds) > 1:
        header = (f"# crossrank tune: the best trial (#{number}) of the study beside this file, "
                  f"valid {monitor} {value:.6f} (mean of {len(folds)} folds)\n"
                  f"# crossrank train --config {path.name} trains its fold 0 again (valid "
                  f"{monitor} {folds[0]:.6f} with the same seed)")
    else:
        header = (f"# crossrank tune: the best trial (#{number}) of the study beside this "
                  f"file, valid {monitor} {value:.6f}\n"
                  f"# crossrank train --config {path.name} trains it again (the same value "
                  "with the same seed)")
    write_run_toml(run, path, header=header)
    return path


def write_plots(study: Any, out: Path, *, monitor: str) -> list[Path]:
    """``history.png`` (each trial's value and the best so far) and ``importance.png``
    (fANOVA importance of each searched option; needs two completed trials)."""
    from optuna.trial import TrialState

    written = []
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    if finished:
        written.append(_plot_history(study, finished, out / "history.png", monitor))
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    if len(complete) >= 2:
        importance = _importances(study)
        if importance:
            written.append(_plot_importance(importance, len(complete),
                                            out / "importance.png", monitor))
    return written


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _plot_history(study: Any, finished: list[Any], path: Path, monitor: str) -> Path:
    from optuna.trial import TrialState

    higher = study.direction.name == "MAXIMIZE"
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    pruned = [t for t in finished if t.state == TrialState.PRUNED and t.intermediate_values]
    if complete:
        ax.scatter([t.number for t in complete], [t.value for t in complete], s=22,
                   color="tab:blue", label="complete: best epoch's value", zorder=3)
        best, xs, ys = None, [], []
        for t in sorted(complete, key=lambda t: t.number):
            if best is None or (t.value > best if higher else t.value < best):
                best = t.value
            xs.append(t.number)
            ys.append(best)
        ax.step(xs, ys, where="post", color="tab:red", label="best so far", zorder=2)
    if pruned:
        stopped = [(t.number, t.intermediate_values[t.last_step]) for t in pruned]
        low, high = _view(ax, [t.value for t in complete], [v for _, v in stopped])
        inside = [(n, v) for n, v in stopped if low <= v <= high]
        if inside:
            ax.scatter(*zip(*inside, strict=True), marker="x", s=22, color="tab:gray",
                       label="pruned: value when stopped", zorder=3)
        # far off the complete trials' values: drawn at the axis' edge, not to scale
        for edge, marker, off in ((high, "^", [n for n, v in stopped if v > high]),
                                  (low, "v", [n for n, v in stopped if v < low])):
            if off:
                ax.scatter(off, [edge] * len(off), marker=marker, s=26, color="tab:gray",
                           clip_on=False, zorder=3, label=f"pruned: off the scale ({len(off)})")
    refined = [t.number for t in finished if t.user_attrs.get(REFINEMENT)]
    if refined:
        ax.axvline(min(refined) - 0.5, color="tab:green", linestyle=":",
                   label="--refine from here: one choice of the best changed")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"valid {monitor} ({'higher' if higher else 'lower'} is better)")
    ax.set_title(f"crossrank tune: {len(complete)} complete, {len(pruned)} pruned trials")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return _save(fig, path)


def _view(ax: Any, complete: list[float], stopped: list[float]) -> tuple[float, float]:
    """Set the value axis to the complete trials' values with a margin of their spread on
    each side (a pruned trial that blew up would otherwise squash them to a line); without
    complete trials, every value. Returns the axis' limits."""
    values = complete or stopped
    low, high = min(values), max(values)
    margin = (high - low) or abs(high) * 0.05 or 1.0
    low, high = low - margin, high + margin
    if not complete:
        return low, high
    ax.set_ylim(low, high)
    return low, high


def _importances(study: Any) -> dict[str, float]:
    """fANOVA importances (seeded, so the plot is the same for the same trials); {} when the
    completed trials do not vary enough to tell."""
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    try:
        found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (ValueError, RuntimeError):
        return {}
    return {k: float(v) for k, v in found.items() if math.isfinite(v)}


def _plot_importance(importance: dict[str, float], complete: int, path: Path,
                     monitor: str) -> Path:
    names = sorted(importance, key=importance.__getitem__)
    fig = _figure(7.5, 1.2 + 0.32 * len(names))
    ax = fig.add_subplot()
    ax.barh(range(len(names)), [importance[n] for n in names], color="tab:blue")
    ax.set_yticks(range(len(names)), labels=names, fontsize=9)
    ax.set_xlabel(f"share of the variance of valid {monitor} (fANOVA)")
    ax.set_title(f"crossrank tune: option importance over {complete} complete trials")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
