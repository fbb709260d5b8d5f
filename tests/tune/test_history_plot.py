"""The history plot's value axis follows the complete trials, not a pruned trial that blew up."""

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("matplotlib")

from crossrank.tune import report  # noqa: E402


def test_a_blown_up_pruned_trial_does_not_squash_the_axis(tmp_path, monkeypatch):
    study = optuna.create_study(direction="minimize")
    for value in (0.91, 0.905, 0.92):
        study.add_trial(optuna.trial.create_trial(value=value))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                              intermediate_values={0: 3.5}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                              intermediate_values={0: 0.93, 1: 0.915}))
    limits = []
    real = report._save

    def keep_limits(fig, path):
        ax = fig.axes[0]
        limits.append(ax.get_ylim())
        labels = [h.get_label() for h in ax.collections]
        limits.append(labels)
        return real(fig, path)

    monkeypatch.setattr(report, "_save", keep_limits)
    report._plot_history(study, study.trials, tmp_path / "h.png", "rmse")
    (low, high), labels = limits
    assert low < 0.905 and 0.92 < high < 1.0  # the 3.5 is off the scale
    assert "pruned: off the scale (1)" in labels and "pruned: value when stopped" in labels
    assert (tmp_path / "h.png").stat().st_size > 0
