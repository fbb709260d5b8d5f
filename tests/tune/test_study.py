"""A study on a tiny click log: what each trial reports is what ``crossrank train`` gets for
the same options; pruning, continuing, the data encoded once per encoder configuration, and
the files a study leaves."""

from __future__ import annotations

import csv
import json

import optuna
import pytest
from tune_data import BASE, SPACE

from crossrank.errors import ConfigError
from crossrank.pipeline import build_run_config, train_run
from crossrank.pipeline.config_file import read_config_file
from crossrank.pipeline.run_config import merge_tables
from crossrank.tune import parse_duration, tune

PNG = b"\x89PNG\r\n\x1a\n"


def _base(clicks, **training):
    return merge_tables(BASE, {"data": {"path": str(clicks)}, "training": training})


def _rows(out):
    with open(out / "trials.csv") as fh:
        return list(csv.DictReader(fh))


def _study(out):
    return optuna.load_study(study_name="crossrank-tune",
                             storage=f"sqlite:///{out / 'study.db'}")


def test_best_toml_trains_to_the_best_trials_value(clicks, tmp_path):
    out = tmp_path / "study"
    lines: list[str] = []
    result = tune(_base(clicks), SPACE, out, trials=3, log=lines.append)
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    values = [float(r["value"]) for r in rows]
    assert result.monitor == "logloss" and result.best_value == min(values)
    assert result.best_number == values.index(min(values)) and result.finished == 3
    progress = [line for line in lines if line.startswith("trial ")]
    assert [p.split(" (")[0] for p in progress] == ["trial 1/3", "trial 2/3", "trial 3/3"]
    assert all("| best " in p and "elapsed" in p for p in progress)
    # the best configuration, trained as crossrank train --config best.toml does
    run = build_run_config(read_config_file(out / "best.toml"))
    assert run.training.lr == pytest.approx(float(rows[result.best_number]["training.lr"]),
                                            rel=1e-15)
    fit = train_run(run, tmp_path / "again", verbose=False)
    assert fit.best_metrics["logloss"] == result.best_value  # exactly: the same run
    # and each epoch's value the trial reported (the pruner's input) is that run's history
    reported = _study(out).trials[result.best_number].intermediate_values
    assert reported == {h["epoch"]: h["valid"]["logloss"] for h in fit.history}
    for name in ("history.png", "importance.png"):
        assert (out / name).read_bytes()[:8] == PNG


def test_the_direction_follows_the_monitored_metric(clicks, tmp_path):
    result = tune(_base(clicks, monitor="auc"), SPACE, tmp_path / "s", trials=2,
                  log=lambda line: None)
    values = [float(r["value"]) for r in _rows(tmp_path / "s")]
    assert result.monitor == "auc" and result.best_value == max(values)
    assert _study(tmp_path / "s").direction == optuna.study.StudyDirection.MAXIMIZE


def test_pruned_trials_stop_at_the_epoch_the_pruner_says(clicks, tmp_path):
    # every value is above 0, so this pruner stops each trial after its first epoch
    result = tune(_base(clicks), SPACE, tmp_path / "s", trials=2, log=lambda line: None,
                  pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    rows = _rows(tmp_path / "s")
    assert [(r["state"], r["epochs"]) for r in rows] == [("PRUNED", "1")] * 2
    assert result.best_number is None and not (tmp_path / "s" / "best.toml").exists()


def test_a_study_continues_and_refuses_another_configuration(clicks, tmp_path):
    out = tmp_path / "s"
    tune(_base(clicks), SPACE, out, trials=2, log=lambda line: None)
    first = [(r["number"], r["value"], r["training.lr"]) for r in _rows(out)]
    lines: list[str] = []
    tune(_base(clicks), SPACE, out, trials=3, log=lines.append)
    rows = _rows(out)
    assert [(r["number"], r["value"], r["training.lr"]) for r in rows[:2]] == first
    assert len(rows) == 3 and rows[2]["training.lr"] not in {f[2] for f in first}
    assert any("2 already in" in line for line in lines)
    other = {"default_space": False, "space": {"training.lr": [0.01, 0.02]}}
    with pytest.raises(ConfigError, match="holds a study with other the search space"):
        tune(_base(clicks), other, out, trials=3, log=lambda line: None)
    with pytest.raises(ConfigError, match="holds a study with other the run configuration"):
        tune(_base(clicks, batch_size=64), SPACE, out, trials=3, log=lambda line: None)
    tune(_base(clicks), other, out, trials=1, overwrite=True, log=lambda line: None)
    assert len(_rows(out)) == 1


def test_the_data_is_encoded_once_per_encoder_configuration(clicks, tmp_path):
    space = {"default_space": False, "space": {"encoder.min_count": [1, 50],
                                               "training.lr": {"low": 1e-3, "high": 1e-1}}}
    base = merge_tables(_base(clicks), {"encoder": {"min_count": 1}})  # one of the drawn
    tune(base, space, tmp_path / "s", trials=5, log=lambda line: None)
    used = {r["encoder.min_count"] for r in _rows(tmp_path / "s")}
    encoded = sorted(p.name for p in (tmp_path / "s" / "data").iterdir())
    assert len(encoded) == len(used | {"1"})  # the base's, and one per value drawn
    vocab = [json.loads((tmp_path / "s" / "data" / k / "encoder" / "encoder.json").read_text())
             for k in encoded]
    assert len({json.dumps(v, sort_keys=True) for v in vocab}) == len(encoded)


def test_a_run_without_validation_rows_is_refused(clicks, tmp_path):
    with pytest.raises(ConfigError, match="valid_fraction must be > 0"):
        tune(_base(clicks, valid_fraction=0.0), SPACE, tmp_path / "s", trials=1)
    with pytest.raises(ConfigError, match="--trials must be a positive integer"):
        tune(_base(clicks), SPACE, tmp_path / "s", trials=0)


@pytest.mark.parametrize("text, seconds", [("30m", 1800.0), ("1h30m", 5400.0), ("90s", 90.0),
                                           ("45", 45.0), ("1.5h", 5400.0), (None, None)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "30x"])
def test_bad_durations(text):
    with pytest.raises(ConfigError, match="--timeout"):
        parse_duration(text)


def test_a_run_after_another_starts_from_the_processs_thread_count(clicks, tmp_path):
    """A model with batch norm keeps torch's thread count (its sums depend on it): a trial
    after one whose thread governor left another count trains as a fresh process would."""
    import torch

    from crossrank.train.threads import torch_default_threads

    default = torch_default_threads()
    if default == 1:
        pytest.skip("one thread is torch's default here: nothing to restore")
    torch.set_num_threads(1)  # as a governed run may leave it
    try:
        run = build_run_config(_base(clicks, threads=None, epochs=1),
                               {"model": {"norm": "batch"}})
        train_run(run, tmp_path / "run", verbose=False)
        assert torch.get_num_threads() == default
    finally:
        torch.set_num_threads(default)


def test_folds_validate_on_disjoint_blocks_and_best_toml_gives_fold_0(clicks, tmp_path):
    out = tmp_path / "s"
    result = tune(_base(clicks), SPACE, out, trials=1, folds=3, log=lambda line: None)
    rows = _rows(out)
    for row in rows:
        folds = [float(row[f"fold_{k}"]) for k in range(3)]
        assert float(row["value"]) == sum(folds) / 3 and len(set(folds)) == 3
    assert list(result.best_folds) == [float(rows[result.best_number][f"fold_{k}"])
                                       for k in range(3)]
    assert "mean of 3 folds" in (out / "best.toml").read_text()
    # crossrank train --config best.toml validates on fold 0: its value, exactly
    best = read_config_file(out / "best.toml")
    fit = train_run(build_run_config(best), tmp_path / "again", verbose=False)
    assert fit.best_metrics["logloss"] == result.best_folds[0]
    # fold 1 is a plain run on the rows reordered so that its block (rows 480..540: 600 rows,
    # 60 a block) comes last: the same training rows in the same order, the same validation
    # rows, the same vocabulary and scaling (fitted on the same rows)
    lines = clicks.read_text().splitlines()
    header, body = lines[0], lines[1:]
    moved = tmp_path / "fold1.csv"
    moved.write_text("\n".join([header, *body[:480], *body[540:], *body[480:540]]) + "\n")
    best["data"]["path"] = str(moved)
    fit = train_run(build_run_config(best), tmp_path / "fold1", verbose=False)
    assert fit.best_metrics["logloss"] == result.best_folds[1]


def test_a_study_refuses_other_folds_and_folds_that_do_not_fit(clicks, tmp_path):
    out = tmp_path / "s"
    tune(_base(clicks), SPACE, out, trials=1, folds=2, log=lambda line: None)
    with pytest.raises(ConfigError, match="holds a study with other --folds than these"):
        tune(_base(clicks), SPACE, out, trials=2, log=lambda line: None)
    assert len(_rows(out)) == 1
    for folds in (0, 2.0, True, "2"):
        with pytest.raises(ConfigError, match=f"--folds must be a positive integer, got "
                                              f"{folds!r}"):
            tune(_base(clicks), SPACE, tmp_path / "bad", trials=1, folds=folds)
    with pytest.raises(ConfigError, match=r"--folds 11: 600 rows hold 10 disjoint validation "
                                          r"blocks of training.valid_fraction 0.1; give "
                                          r"--folds <= 10"):
        tune(_base(clicks), SPACE, tmp_path / "bad", trials=1, folds=11)
    assert not (tmp_path / "bad" / "study.db").exists()  # refused before any trial


def test_a_new_study_tries_the_base_configuration_first_and_once(clicks, tmp_path):
    out = tmp_path / "s"
    lines: list[str] = []
    tune(_base(clicks, lr=0.01), SPACE, out, trials=2, log=lines.append)
    tune(_base(clicks, lr=0.01), SPACE, out, trials=3, log=lines.append)  # continued
    trials = _study(out).trials
    assert trials[0].params["training.lr"] == 0.01  # the base's; dropout 0.2 is no choice
    assert [t.params["training.lr"] == 0.01 for t in trials].count(True) == 1
    assert sum("the first trial: the base configuration where the space holds" in line
               for line in lines) == 1


def test_the_default_model_is_tuned_as_dcn_and_small_data_names_the_linear_model(clicks,
                                                                                tmp_path):
    lines: list[str] = []
    base = {"data": {"path": str(clicks)},
            "training": {"epochs": 1, "batch_size": 128, "threads": 1, "progress": False}}
    tune(base, SPACE, tmp_path / "auto", trials=1, log=lines.append)
    assert any(line.startswith("tuning dcn on valid logloss") for line in lines)
    assert "the default model is tuned as dcn; on these 600 rows (fewer than 3,000) crossrank " \
           "train's default is the linear model: --model linear tunes that" in lines
    assert build_run_config(read_config_file(tmp_path / "auto" / "best.toml")).model.name == "dcn"
    # the linear model's own default space: which values keep a weight
    lines.clear()
    result = tune(merge_tables(base, {"model": {"name": "linear"}}), None, tmp_path / "linear",
                  trials=2, log=lines.append)
    assert any(line.strip().startswith("encoder.min_count  one of 1, 2, 3, 5, 10")
               for line in "\n".join(lines).splitlines())
    assert not any("tuned as dcn" in line for line in lines)
    best = build_run_config(read_config_file(tmp_path / "linear" / "best.toml"))
    assert best.model.name == "linear"
    fit = train_run(best, tmp_path / "again", verbose=False)
    assert fit.best_metrics["logloss"] == result.best_value
