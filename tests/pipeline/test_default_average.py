"""training.ema_decay none (the default) decides by the task: a regression run validates and
saves the weight average (decay 0.995), a binary run the weights as trained; either way
run.toml and model.json record the decay used, and that file trains the same model again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from safetensors.torch import load_file

from crossrank.data import write_default_synthetic
from crossrank.errors import RunDirError
from crossrank.pipeline import build_run_config, train_run
from crossrank.pipeline.config_file import read_config_file
from crossrank.train.averaging import REGRESSION_EMA_DECAY

SMALL = {"model": {"embedding_dim": 4, "deep_layers": [8], "cross": {"rank": 2}},
         "training": {"batch_size": 128, "epochs": 3, "patience": 3, "seed": 2, "threads": 1,
                      "progress": False, "refit": False}}


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    """1,000 rows: two categorical fields and a rating that depends on their pair."""
    rng = np.random.default_rng(3)
    u, v = rng.integers(0, 20, 1000), rng.integers(0, 15, 1000)
    rating = 3 + (u % 3 == v % 3) - 0.5 * (u % 2) + rng.normal(0, 0.3, 1000)
    path = tmp_path_factory.mktemp("ratings") / "ratings.csv"
    pa_csv.write_csv(pa.table({"user": [f"u{i}" for i in u], "item": [f"i{i}" for i in v],
                               "rating": rating}), path)
    return path


def _regression(path: Path, **training):
    return build_run_config(SMALL, {"data": {"path": str(path)},
                                    "schema": {"label": "rating", "task": "regression",
                                               "categorical": ["user", "item"]},
                                    "training": training})


def _recorded(out: Path) -> tuple[float, float]:
    """The decay run.toml and model.json record."""
    toml = read_config_file(out / "run.toml")["training"]["ema_decay"]
    meta = json.loads((out / "model.json").read_text())["run_config"]["training"]["ema_decay"]
    return toml, meta


def test_a_regression_run_averages_and_says_so(ratings, tmp_path, capsys):
    out = tmp_path / "reg"
    train_run(_regression(ratings), out)
    assert "validating and saving the weight average, decay 0.995 (the default for " \
        "regression; --ema-decay 0 for none)" in capsys.readouterr().out
    assert _recorded(out) == (REGRESSION_EMA_DECAY, REGRESSION_EMA_DECAY)
    saved = load_file(str(out / "model.safetensors"))
    # run.toml trains the same model again, and 0 turns the average off
    again = tmp_path / "again"
    train_run(build_run_config(read_config_file(out / "run.toml")), again, verbose=False)
    retrained = load_file(str(again / "model.safetensors"))
    assert all((saved[k] == retrained[k]).all() for k in saved)
    off = tmp_path / "off"
    capsys.readouterr()
    train_run(_regression(ratings, ema_decay=0), off)
    assert "weight average" not in capsys.readouterr().out
    assert _recorded(off) == (0.0, 0.0)
    unaveraged = load_file(str(off / "model.safetensors"))  # same updates, not averaged
    assert any(not (saved[k] == unaveraged[k]).all() for k in saved)


def test_a_binary_run_does_not_average_and_says_so(tmp_path):
    data = tmp_path / "clicks.tsv"
    write_default_synthetic(data, 600, seed=4)
    out = tmp_path / "bin"
    train_run(build_run_config(SMALL, {"data": {"path": str(data)}}), out, verbose=False)
    assert _recorded(out) == (0.0, 0.0)


def test_a_run_saved_before_the_default_resumes_without_an_average(ratings, tmp_path):
    """A model.json that says ema_decay none was written before none meant "by the task":
    it did not average, and resumes so (asked for with 0); the new default is a change."""
    out = tmp_path / "old"
    train_run(_regression(ratings, ema_decay=0, epochs=2), out, verbose=False)
    meta = json.loads((out / "model.json").read_text())
    meta["run_config"]["training"]["ema_decay"] = None  # as the earlier version wrote it
    (out / "model.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match=r"training.ema_decay 0.0 -> 0.995"):
        train_run(_regression(ratings, epochs=3), out, resume=True, verbose=False)
    result = train_run(_regression(ratings, ema_decay=0, epochs=3), out, resume=True,
                       verbose=False)
    assert len(result.history) == 3
