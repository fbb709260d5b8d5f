"""The search space: every bad entry is one line naming it before any trial runs; the
defaults build a run at every bound and choice; values go to Optuna and come back intact."""

from __future__ import annotations

import optuna
import pytest

from crossrank.errors import ConfigError
from crossrank.models.registry import list_models
from crossrank.pipeline.run_config import build_run_config
from crossrank.tune.space import DEFAULT_SPACES, as_layer, build_space


@pytest.mark.parametrize("entry, message", [
    ({"training.lrr": [0.1]}, "tune.space 'training.lrr': unknown option; did you mean 'training.lr'?"),
    ({"rank": [8, 16]}, "tune.space 'rank': unknown option; did you mean 'model.cross.rank'?"),
    ({"training.lr": {"low": 0.1, "high": 0.01}}, "low 0.1 must be below high 0.01"),
    ({"training.lr": {"low": 0.1, "high": 0.1}}, "low 0.1 must be below high 0.1"),
    ({"training.lr": {"low": 0.0, "high": 0.1, "log": True}}, "a log range needs low > 0"),
    ({"training.lr": {"low": -1.0, "high": 0.1}}, "-1.0 does not build a run: lr must be positive, got -1.0"),
    ({"model.cross.num_layers": {"low": 1.5, "high": 3}}, "low must be an integer, got 1.5"),
    ({"model.cross.num_layers": {"low": 0, "high": 3}}, "0 does not build a run"),
    ({"model.cross.num_layers": {"low": 1, "high": 4, "step": 1, "log": True}},
     "step must be positive and not with log"),
    ({"model.cross.num_layers": {"low": 1, "hi": 4}}, "a range is {low, high[, log, step]}"),
    ({"model.norm": ["none", "group"]}, "group does not build a run: option 'model.norm' must be one of"),
    ({"training.optimizer": ["adam", "lion"]}, "lion does not build a run"),
    ({"training.batch_size": [256, "big"]},
     "big does not build a run: option 'training.batch_size' must be an integer"),
    ({"model.structure": {"low": 1, "high": 2}}, "a range needs a number option"),
    ({"model.dropout": []}, "an empty list of choices"),
    ({"model.dropout": [0.1, 0.1]}, "a choice is listed twice"),
    ({"model.dropout": 0.1}, "must be a list of choices or a table"),
    ({"training.seed": [0, 1]}, "cannot be searched"),
    ({"training.valid_fraction": [0.1, 0.2]}, "every trial must validate on the same rows"),
    ({"training.monitor": ["auc", "logloss"]}, "every trial must be scored by the same metric"),
    ({"model.name": ["dcn", "dnn"]}, "tune one model family at a time"),
    ({"data.path": ["a.csv"]}, "the data and the schema are the study's"),
])
def test_a_bad_entry_is_one_line_naming_it(entry, message):
    with pytest.raises(ConfigError) as err:
        build_space({"space": entry}, {})
    text = str(err.value)
    assert message in text and "\n" not in text
    assert text.startswith(f"tune.space {next(iter(entry))!r}")


def test_bad_tune_keys():
    with pytest.raises(ConfigError, match="unknown \\[tune\\] key 'spaces'; did you mean 'space'"):
        build_space({"spaces": {}}, {})
    with pytest.raises(ConfigError, match="default_space must be true or false"):
        build_space({"default_space": "no"}, {})
    with pytest.raises(ConfigError, match="the search space is empty"):
        build_space({"default_space": False}, {})


@pytest.mark.parametrize("family", list_models())
def test_every_family_has_a_default_space_that_builds(family):
    space = build_space(None, {"model": {"name": family}})  # every bound and choice built
    assert [p.key for p in space.params] == list(DEFAULT_SPACES[family])


def test_user_entries_replace_and_add_to_the_defaults():
    space = build_space({"space": {"training.lr": [0.01], "model.norm": ["none", "batch"]}},
                        {"model": {"name": "dnn"}})
    by_key = {p.key: p for p in space.params}
    assert by_key["training.lr"].choices == (0.01,)
    assert by_key["model.norm"].choices == (None, "batch")  # "none": the option's none
    assert set(by_key) == set(DEFAULT_SPACES["dnn"]) | {"model.norm"}
    only = build_space({"default_space": False, "space": {"model.dropout": [0.0, 0.5]}}, {})
    assert [p.key for p in only.params] == ["model.dropout"]


def test_values_round_trip_through_optuna():
    space = build_space({"default_space": False, "space": {
        "model.deep_layers": [[64], [128, 64]], "model.cross.rank": ["none", 8],
        "model.cross.num_layers": {"low": 1, "high": 4, "step": 3},
        "training.lr": {"low": 1e-4, "high": 1e-2, "log": True}}}, {})
    stored = {"model.deep_layers": "[128, 64]", "model.cross.rank": "none",
              "model.cross.num_layers": 4, "training.lr": 3e-3}
    values = space.suggest(optuna.trial.FixedTrial(stored))
    assert values == {"model.deep_layers": [128, 64], "model.cross.rank": None,
                      "model.cross.num_layers": 4, "training.lr": 3e-3}
    assert space.decode(stored) == values
    run = build_run_config(as_layer(values))
    assert (run.model.config.deep_layers, run.model.config.cross.rank) == ((128, 64), None)
    assert run.model.config.cross.num_layers == 4 and run.training.lr == 3e-3


def test_a_study_draws_inside_the_space():
    space = build_space({"default_space": False, "space": {
        "model.cross.num_layers": {"low": 1, "high": 7, "step": 3},
        "training.lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "model.dropout": {"low": 0.0, "high": 0.5}}}, {})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        values = space.suggest(study.ask())
        assert values["model.cross.num_layers"] in (1, 4, 7)
        assert 1e-4 <= values["training.lr"] <= 1e-2
        assert 0.0 <= values["model.dropout"] <= 0.5


def test_the_base_configuration_is_a_point_of_the_default_space():
    """Trial 0 of a new study: every default entry at the defaults' values, decoded back to
    exactly the base run (min_count's automatic default counted as what it resolves to); the
    default model, auto, is tuned as dcn (crossrank.tune.study.tuned_family)."""
    run = build_run_config({"model": {"name": "dcn"}})
    space = build_space(None, {})
    start = space.base_params(run)
    assert sorted(start) == sorted(p.key for p in space.params)
    again = build_run_config(as_layer(space.decode(start)))
    assert again.to_dict() == {**run.to_dict(),
                               "encoder": {**run.to_dict()["encoder"], "min_count": 10}}


def test_base_values_the_space_cannot_draw_are_left_to_the_sampler():
    base = {"training": {"lr": 0.5, "batch_size": 384}, "model": {"dropout": 0.25}}
    space = build_space({"default_space": False, "space": {
        "training.lr": {"low": 1e-4, "high": 1e-2, "log": True},   # 0.5: out of range
        "training.batch_size": {"low": 256, "high": 1024, "step": 256},  # 384: off the step
        "model.dropout": [0.0, 0.25],                              # a choice: kept
        "model.cross.num_layers": {"low": 1, "high": 4}}}, base)   # 2: in range
    assert space.base_params(build_run_config(base)) == {"model.dropout": 0.25,
                                                        "model.cross.num_layers": 2}
