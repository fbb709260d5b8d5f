"""The factorization machine term by default (terms.fm_dim none): decided by the model, kept
resolved in its config and spec, never in a multi-task model, never where it cannot be built,
never over an explicit setting."""

from __future__ import annotations

import pytest

from crossrank.errors import ConfigError
from crossrank.models import FeatureSchema, build_model
from crossrank.models.registry import model_from_spec, model_spec

TWO = FeatureSchema(dense=("a",), categorical=("u", "v"), vocab_sizes=(5, 7), embedding_dim=4)
ONE = FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(5,), embedding_dim=4)


@pytest.mark.parametrize("name", ["dcn", "dnn"])
def test_a_single_label_model_gets_the_fm_term_and_saves_its_size(name):
    model = build_model(name, TWO, {"deep_layers": [8]}, task="regression")
    assert "fm" in model.named_parts() and model.config.terms.fm_dim == 32
    spec = model_spec(model)
    assert spec["config"]["terms"]["fm_dim"] == 32 and spec["config"]["terms"]["fm_l2"] == 0.05
    assert "fm" in model_from_spec(spec).named_parts()


@pytest.mark.parametrize("name, schema, config, tasks", [
    ("dcn", ONE, {}, "binary"),  # one categorical field: no pair to factorize
    ("dnn", FeatureSchema(dense=("a", "b")), {}, "regression"),  # no categorical field
    ("dcn", TWO, {"terms": {"fm_dim": 0}}, "regression"),  # the user's 0 stands
    ("dlrm", TWO, {"bottom_layers": [4], "top_layers": [4]}, "binary"),  # DLRM: none
    ("dlrm", TWO, {"bottom_layers": [4], "top_layers": [4], "terms": {"first_order": True}},
     "regression"),  # another terms option given: DLRM's none all the same
    ("dcn", TWO, {"deep_layers": [8]}, ["binary", "regression"]),  # several labels
    ("dnn", TWO, {"multitask": {"arch": "mmoe", "num_experts": 2}}, ["binary", "binary"]),
])
def test_no_fm_term_where_the_default_does_not_apply(name, schema, config, tasks):
    model = build_model(name, schema, config, task=tasks)
    assert "fm" not in model.named_parts() and model.config.terms.fm_dim == 0
    assert model_spec(model)["config"]["terms"]["fm_dim"] == 0


def test_an_explicit_fm_term_is_kept_and_still_refused_with_several_labels():
    assert build_model("dcn", TWO, {"terms": {"fm_dim": 4}}).config.terms.fm_dim == 4
    with pytest.raises(ConfigError, match="single-task logit terms"):
        build_model("dcn", TWO, {"terms": {"fm_dim": 4}}, task=["binary", "binary"])


def test_a_version_1_spec_without_terms_loads_without_an_fm_term():
    v1 = {"name": "dnn", "schema": {"dense": ["a"], "sparse": ["u", "v"], "vocab_sizes": [5, 7],
                                    "embedding_dim": 4},
          "config": {"deep_layers": [8], "task": "binary"}}
    model = model_from_spec(v1)
    assert "fm" not in model.named_parts() and model.config.terms.fm_l2 == 0.0
