"""The default model (``model.name = "auto"``): the linear model on a small data set, DCN
otherwise; what the run records, reproduces and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from safetensors.torch import load_file

from crossrank.errors import ConfigError
from crossrank.models.registry import AUTO_LINEAR_ROWS
from crossrank.pipeline import build_run_config, evaluate_on_data, export_model_dir, train_run
from crossrank.pipeline.auto_model import encoder_for, resolve_auto_model
from crossrank.pipeline.config_file import read_config_file
from crossrank.pipeline.run_config import build_model_section

FAST = {"training": {"epochs": 6, "threads": 1, "progress": False}}


@pytest.fixture(scope="module")
def clicks(tmp_path_factory) -> Path:
    """400 rows: a dense feature, two categorical fields (one with rare values), a click."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=400)
    u = rng.integers(0, 8, 400)
    rare = [f"r{v}" for v in rng.integers(0, 150, 400)]  # most seen once or twice
    click = (rng.random(400) < 1 / (1 + np.exp(-(x + (u % 2) - 0.5)))).astype(int)
    path = tmp_path_factory.mktemp("clicks") / "clicks.csv"
    pa_csv.write_csv(pa.table({"x": x, "u": [f"u{v}" for v in u], "rare": rare,
                               "click": click}), path)
    return path


def _run(path: Path, *layers):
    return build_run_config(FAST, {"data": {"path": str(path)},
                                   "schema": {"label": "click", "dense": ["x"],
                                              "categorical": ["u", "rare"]}}, *layers)


def test_a_small_data_set_gets_the_linear_model_and_says_why(clicks, tmp_path, capsys):
    out = tmp_path / "auto"
    train_run(_run(clicks), out)
    said = capsys.readouterr().out
    assert f"model: linear (logistic or linear regression, its L2 chosen on the validation " \
           f"rows): 400 training rows, fewer than the {AUTO_LINEAR_ROWS:,} a network needs " \
           "to beat it (--model dcn for the network)" in said
    assert "epoch 1 (C 0.001)" in said
    saved = read_config_file(out / "run.toml")
    # the resolved family and vocabulary are written down: every value kept (min_count 1)
    assert saved["model"]["name"] == "linear" and saved["encoder"]["min_count"] == 1
    meta = json.loads((out / "model.json").read_text())
    assert meta["run_config"]["model"]["name"] == "linear"
    encoder = json.loads((out / "encoder" / "encoder.json").read_text())
    assert encoder["options"]["min_count"] == 1
    # run.toml trains the same model again, bit for bit
    again = tmp_path / "again"
    train_run(build_run_config(read_config_file(out / "run.toml")), again, verbose=False)
    first, second = load_file(str(out / "model.safetensors")), \
        load_file(str(again / "model.safetensors"))
    assert first.keys() == second.keys() and all((first[k] == second[k]).all() for k in first)
    # and it is a model like any other: evaluated, exported
    metrics = evaluate_on_data(out, data=str(clicks))
    assert 0.5 < metrics["auc"] <= 1.0
    assert export_model_dir(out, out=tmp_path / "exported").task == "binary"


def test_a_network_option_or_a_larger_data_set_gets_dcn(clicks, tmp_path, monkeypatch):
    out = tmp_path / "option"
    train_run(_run(clicks, {"model": {"deep_layers": [8]}}), out, verbose=False)
    saved = read_config_file(out / "run.toml")
    assert saved["model"]["name"] == "dcn" and saved["encoder"].get("min_count") is None
    monkeypatch.setattr("crossrank.pipeline.auto_model.AUTO_LINEAR_ROWS", 300)
    out = tmp_path / "larger"
    train_run(_run(clicks), out, verbose=False)
    assert read_config_file(out / "run.toml")["model"]["name"] == "dcn"


def test_the_rule():
    auto = build_model_section({})
    assert resolve_auto_model(auto, AUTO_LINEAR_ROWS - 1, 1).name == "linear"
    assert resolve_auto_model(auto, AUTO_LINEAR_ROWS, 1).name == "dcn"
    assert resolve_auto_model(auto, 10, 2).name == "dcn"  # several labels: a network
    assert resolve_auto_model(build_model_section({"embedding_dim": 8}), 10, 1).name == "dcn"
    explicit = build_model_section({"name": "dcn"})
    assert resolve_auto_model(explicit, 10, 1) is explicit
    dcn = resolve_auto_model(build_model_section({"cross": {"rank": 4}}), 10, 1)
    assert dcn.name == "dcn" and dcn.config.cross.rank == 4
    # an option given at its default value still says "the network"; auto alone round-trips
    assert build_model_section({"name": "auto", "sparse_gradients": True}).name == "dcn"
    assert build_model_section({"embedding_dim": 16}).name == "dcn"
    assert build_run_config(build_run_config({}).to_dict()).model.name == "auto"
    # the linear model keeps every value unless told otherwise
    run = build_run_config({})
    assert encoder_for(run.encoder, "linear").min_count == 1
    assert encoder_for(run.encoder, "dcn") is run.encoder
    given = build_run_config({"encoder": {"min_count": 5}}).encoder
    assert encoder_for(given, "linear").min_count == 5


def test_resuming_an_auto_run_takes_the_family_it_became(clicks, tmp_path):
    out = tmp_path / "resume"
    first = train_run(_run(clicks, {"training": {"epochs": 2, "refit": False}}), out,
                      verbose=False)
    assert len(first.history) == 2
    result = train_run(_run(clicks, {"training": {"epochs": 4, "refit": False}}), out,
                       resume=True, verbose=False)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert [r["path_c"] for r in result.history][2] == pytest.approx(1e-2)


def test_the_linear_model_refuses_what_it_cannot_do(clicks, tmp_path):
    with pytest.raises(ConfigError, match="training.ema_decay 0.5 averages mini-batch"):
        train_run(_run(clicks, {"model": {"name": "linear"}, "training": {"ema_decay": 0.5}}),
                  tmp_path / "ema", verbose=False)
    with pytest.raises(ConfigError, match="unknown option 'model.deep_layers' \\(valid: path_start"):
        _run(clicks, {"model": {"name": "linear", "deep_layers": [8]}})


def test_no_validation_rows_warn_that_nothing_chooses_the_penalty(clicks, tmp_path, capsys):
    train_run(_run(clicks, {"model": {"name": "linear"},
                            "training": {"valid_fraction": 0, "epochs": 3}}), tmp_path / "nv")
    assert "warning: no validation rows, so nothing chooses the linear model's L2: it is the " \
           "path's last point (C 0.01, barely penalized)" in capsys.readouterr().out


def test_the_linear_model_trains_in_one_process(monkeypatch):
    from crossrank.distributed import DistContext
    from crossrank.models import FeatureSchema, build_model
    from crossrank.train.config import TrainConfig
    from crossrank.train.linear_path import check_path_training

    model = build_model("linear", FeatureSchema(dense=("x",)))
    two = DistContext(rank=0, world_size=2, local_rank=0, device="cpu")
    monkeypatch.setattr("crossrank.train.linear_path.current_context", lambda: two)
    with pytest.raises(ConfigError, match="the linear model trains in one process"):
        check_path_training(model, TrainConfig())
    # so under torchrun the default model is the network, whatever the rows
    monkeypatch.setattr("crossrank.pipeline.auto_model.current_context", lambda: two)
    assert resolve_auto_model(build_model_section({}), 10, 1).name == "dcn"


def test_the_command_line_keeps_auto_from_a_config_file_and_on_resume(clicks, tmp_path):
    """A config file saying name = "auto" is the default model, not a family switch (which
    adds the saved embedding dim, and with it a network option); resuming an auto run with
    --model auto continues the family it became."""
    from crossrank.cli import main

    config = tmp_path / "auto.toml"
    config.write_text('[schema]\nlabel = "click"\ndense = ["x"]\ncategorical = ["u", "rare"]\n'
                      '[model]\nname = "auto"\n[training]\nepochs = 2\nrefit = false\n'
                      'progress = false\nthreads = 1\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--data", str(clicks), "--out",
                 str(out)]) == 0
    assert read_config_file(out / "run.toml")["model"]["name"] == "linear"
    assert main(["train", "--config", str(config), "--data", str(clicks), "--out", str(out),
                 "--resume", "--epochs", "3", "--model", "auto"]) == 0
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
