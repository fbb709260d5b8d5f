"""``crossrank tune --refine``: after the search, the best trial's choices changed one at a
time, the rest of its values kept, and the best moving to a change that validates better."""

from __future__ import annotations

import csv
import re

import optuna
import pytest
from tune_data import BASE

from crossrank.errors import ConfigError
from crossrank.pipeline.run_config import merge_tables
from crossrank.tune import tune

SPACE = {"default_space": False,
         "space": {"training.lr": {"low": 1e-3, "high": 1e-1, "log": True},
                   "model.dropout": [0.0, 0.3],
                   "training.batch_size": [64, 128, 256],
                   "model.deep_layers": [[8], [16, 8]]}}
CHOICES = ("model.dropout", "training.batch_size", "model.deep_layers")


def _trials(out):
    study = optuna.load_study(study_name="crossrank-tune", storage=f"sqlite:///{out / 'study.db'}")
    return study.trials


def _changed(a, b):
    return [k for k in a if a[k] != b[k]]


def test_refinement_trials_change_one_choice_of_the_best_so_far(clicks, tmp_path):
    out = tmp_path / "s"
    lines: list[str] = []
    base = merge_tables(BASE, {"data": {"path": str(clicks)}})
    tune(base, SPACE, out, trials=2, refine_trials=6, log=lines.append)
    trials = _trials(out)
    assert 2 < len(trials) <= 8
    rounds = [re.search(r"refinement: (\d+) trial\(s\) .* \(#(\d+)\)", line)
              for line in lines]
    rounds = [(int(m[1]), int(m[2])) for m in rounds if m]
    assert sum(n for n, _ in rounds) == len(trials) - 2
    k = 2
    for n, best in rounds:
        done = [t for t in trials[:k] if t.state == optuna.trial.TrialState.COMPLETE]
        assert best == min(done, key=lambda t: t.value).number  # log-loss: lower is better
        for trial in trials[k:k + n]:
            # one choice entry of that best trial changed, nothing else
            changed = _changed(trial.params, trials[best].params)
            assert len(changed) == 1 and changed[0] in CHOICES, (trial.params, best)
        k += n
    # trials.csv marks the refinement's trials
    with open(out / "trials.csv") as fh:
        marks = [row["refinement"] for row in csv.DictReader(fh)]
    assert marks == [""] * 2 + ["yes"] * (len(trials) - 2)
    # no configuration twice
    assert len({tuple(sorted(map(str, t.params.items()))) for t in trials}) == len(trials)
    ended = [line for line in lines if line.startswith("refinement:")]
    spent = len(trials) == 8
    assert spent or "no one-choice change beats" in ended[-1] or "has been tried" in ended[-1]
    # the neighbours of the first best: 1 + 2 + 1 of them
    assert "refinement: 4 trial(s) changing one choice of the best trial" in lines[
        next(i for i, line in enumerate(lines) if line.startswith("refinement:"))]


def test_refinement_continues_a_finished_study_without_repeating_a_trial(clicks, tmp_path):
    out = tmp_path / "s"
    base = merge_tables(BASE, {"data": {"path": str(clicks)}})
    tune(base, SPACE, out, trials=2, log=lambda line: None)
    tune(base, SPACE, out, trials=2, refine_trials=2, log=lambda line: None)  # only refines
    tune(base, SPACE, out, trials=2, refine_trials=2, log=lambda line: None)  # 2 more
    trials = _trials(out)
    assert len(trials) == 6
    assert len({tuple(sorted(map(str, t.params.items()))) for t in trials}) == 6


def test_a_negative_refinement_budget_is_refused(clicks, tmp_path):
    base = merge_tables(BASE, {"data": {"path": str(clicks)}})
    with pytest.raises(ConfigError, match="--refine must be an integer >= 0"):
        tune(base, SPACE, tmp_path / "s", trials=1, refine_trials=-1)


def test_trials_left_when_the_runner_stops_are_marked_not_run():
    """A runner that stops early (5 trials failing in a row) leaves no trial waiting: the rest
    of the round is marked failed, "not run", and the refinement ends."""
    from crossrank.tune.refine import REFINEMENT, refine
    from crossrank.tune.space import Param, SearchSpace

    space = SearchSpace((Param("a", "choice", choices=(1, 2, 3, 4)),))
    study = optuna.create_study()
    study.enqueue_trial({"a": 1})
    study.optimize(lambda t: float(t.suggest_categorical("a", [1, 2, 3, 4])), n_trials=1)
    lines: list[str] = []
    ran = refine(study, space, 10, lambda n: study.optimize(lambda t: 9.0, n_trials=1),
                 lines.append)
    states = [t.state for t in study.trials]
    assert ran == 1 and optuna.trial.TrialState.WAITING not in states  # 1 of the 3 ran
    assert states.count(optuna.trial.TrialState.FAIL) == 2
    left = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert all(t.user_attrs[REFINEMENT] and "not run" in t.user_attrs["error"] for t in left)
    assert sorted(t.params["a"] for t in left) == [3, 4]  # the round's order: 2 ran first
    assert lines[-1] == "refinement: stopped, 2 enqueued trial(s) not run"
