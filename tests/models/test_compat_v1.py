"""Model directories written before the model-parts change load and score as they did.

tests/fixtures/compat_v1 holds eight model directories (model.json with a version-1 spec,
model.safetensors, encoder/) written by commit 9337209, each with the input rows it scored and
the scores ``crossrank predict`` wrote then (8 significant digits).
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crossrank.data import FeatureEncoder, TableSchema, read_table
from crossrank.models import model_from_spec, model_spec, predict
from crossrank.models.spec_migration import SPEC_VERSION, migrate_spec
from crossrank.train.checkpoint import load_model, load_tensors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "compat_v1"
DIRS = sorted(p for p in FIXTURES.iterdir() if (p / "model.json").is_file())


def _scores(model, model_dir: Path, meta: dict) -> tuple[list[str], np.ndarray]:
    """Score input.csv as ``crossrank predict`` does: the saved encoder, the saved schema."""
    encoder = FeatureEncoder.load(model_dir / "encoder")
    table = read_table(model_dir / "input.csv", fmt="csv",
                       schema=TableSchema.from_dict(meta["table_schema"]))
    batch = encoder.transform(table)
    with torch.no_grad():
        logits = model(torch.from_numpy(batch.dense), torch.from_numpy(batch.sparse))
    return [str(i) for i in batch.ids.tolist()], predict(model.task, logits).double().numpy()


def _expected(model_dir: Path) -> tuple[list[str], np.ndarray]:
    with open(model_dir / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["row_id"] for r in rows], np.array([float(r["score"]) for r in rows])


def test_the_fixture_is_there():
    assert len(DIRS) == 8


@pytest.mark.parametrize("model_dir", DIRS, ids=lambda p: p.name)
def test_old_model_directories_give_the_same_scores(model_dir):
    model, meta = load_model(model_dir)
    assert "version" not in meta["model"]  # a version-1 spec, migrated on load
    ids, scores = _scores(model, model_dir, meta)
    want_ids, want = _expected(model_dir)
    assert ids == want_ids and len(scores) > 0
    np.testing.assert_allclose(scores, want, rtol=0, atol=1e-6)
    # the task moved out of the config and is the one the model was trained for
    assert model.task == meta["model"]["config"]["task"] == meta["table_schema"]["task"]


@pytest.mark.parametrize("model_dir", DIRS, ids=lambda p: p.name)
def test_old_weights_keep_their_names_and_a_new_spec_round_trips(model_dir):
    model, meta = load_model(model_dir)
    saved = load_tensors(model_dir / "model.safetensors")
    assert sorted(model.state_dict()) == sorted(saved)  # a model saved today writes them too
    spec = json.loads(json.dumps(model_spec(model)))
    assert spec["version"] == SPEC_VERSION and "task" not in spec["config"]
    assert "first_order_lr_scale" not in json.dumps(spec)
    clone = model_from_spec(spec)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    _, a = _scores(model, model_dir, meta)
    _, b = _scores(clone, model_dir, meta)
    np.testing.assert_array_equal(a, b)


def test_version_one_keys_move_to_their_sections():
    meta = json.loads((FIXTURES / "dcn_lowrank_parallel_terms" / "model.json").read_text())
    spec = migrate_spec(meta["model"])
    assert spec["task"] == "binary" and spec["schema"]["categorical"] == ["c1", "c2", "c3"]
    assert spec["config"]["cross"] == {"num_layers": 3, "kind": "matrix", "rank": 3,
                                       "num_experts": 1, "diag_scale": 0.0, "activation": None,
                                       "use_bias": True, "l2": 0.0, "backend": "auto"}
    assert spec["config"]["terms"] == {"first_order": True, "first_order_l2": 0.0,
                                       "fm_dim": 3, "fm_l2": 0.0}
    dlrm = migrate_spec(json.loads((FIXTURES / "dlrm_dcn" / "model.json").read_text())["model"])
    assert dlrm["config"]["cross"] == {"num_layers": 2, "rank": 2, "diag_scale": 0.0, "l2": 0.0,
                                       "backend": "auto"}
    assert dlrm["config"]["backend"] == "auto"


def test_bad_specs_are_named():
    from crossrank.errors import ModelFileError

    spec = {"version": 2, "name": "dnn", "task": "binary",
            "schema": {"dense": ["a"]}, "config": {}}
    assert model_from_spec(spec).task == "binary"
    with pytest.raises(ModelFileError, match="newer than this crossrank"):
        model_from_spec({**spec, "version": 3})
    with pytest.raises(ModelFileError, match="unknown model spec key"):
        model_from_spec({**spec, "weights": []})
    with pytest.raises(ModelFileError, match="lacks"):
        model_from_spec({k: v for k, v in spec.items() if k != "task"})
