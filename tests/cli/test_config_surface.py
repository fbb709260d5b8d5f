"""One config surface: flags generated from the configs, --config files, --set, errors."""

from __future__ import annotations

import json
import re

import pytest
from safetensors.numpy import load_file

from crossrank.cli import build_parser, main
from crossrank.cli.options import config_flags
from crossrank.data import write_default_synthetic
from crossrank.pipeline import build_run_config
from crossrank.pipeline.config_file import read_config_file

TRAIN = ["--epochs", "2", "--no-progress", "--batch-size", "128", "--embedding-dim", "4",
         "--model-option", "deep_layers=[8]", "--seed", "3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cfg")
    write_default_synthetic(root / "train.tsv", 1200, seed=5)
    return root


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def _same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def test_saved_config_trains_the_same_model(data, tmp_path):
    """Train from flags; train again from run.toml and from model.json: the same weights."""
    first = tmp_path / "first"
    assert main(["train", "--data", str(data / "train.tsv"), "--out", str(first), *TRAIN,
                 "--set", "training.lr=3e-3", "--lr", "1e-2"]) == 0  # --set wins over --lr
    saved = read_config_file(first / "run.toml")
    assert saved["training"]["lr"] == 3e-3 and saved["model"]["deep_layers"] == [8]
    assert json.loads((first / "model.json").read_text())["run_config"]["training"]["lr"] == 3e-3
    for name in ("run.toml", "model.json"):
        again = tmp_path / f"again-{name}"
        assert main(["train", "--config", str(first / name), "--out", str(again),
                     "--no-progress"]) == 0
        assert _same_weights(first, again), name
    # and a flag typed over the file changes the run
    other = tmp_path / "other"
    assert main(["train", "--config", str(first / "run.toml"), "--out", str(other),
                 "--no-progress", "--seed", "4"]) == 0
    assert not _same_weights(first, other)


def test_resolved_config_round_trips():
    run = build_run_config({"model": {"name": "dlrm"}, "schema": {"task": "regression"},
                            "training": {"lr_scales": {"top": 2}, "grad_clip": 1}})
    assert build_run_config(run.to_dict()) == run
    assert run.training.grad_clip == 1.0 and run.training.lr_scales == {"top": 2.0}


def test_a_none_whose_default_is_a_value_reads_back_from_run_toml(tmp_path):
    # DCN's cross is low rank by default: a full-rank one is written rank = "none"
    from crossrank.pipeline.train_run import write_run_toml

    run = build_run_config({"model": {"cross": {"rank": None}, "terms": {"fm_dim": 4}},
                            "encoder": {"hash_buckets": 100}})
    write_run_toml(run, tmp_path / "run.toml")
    assert 'rank = "none"' in (tmp_path / "run.toml").read_text()
    again = build_run_config(read_config_file(tmp_path / "run.toml"))
    assert again == run and again.model.config.cross.rank is None
    assert again.encoder.encoder_options()["min_count"] == 1  # hashing keeps every value


@pytest.mark.parametrize("argv, message", [
    (["--set", "training.lrr=3"], "unknown option 'training.lrr'; did you mean 'training.lr'?"),
    (["--min-count", "10", "--hash-buckets", "100"],
     "encoder.min_count=10 (--min-count) with encoder.hash_buckets (--hash-buckets)"),
    (["--set", "trainin.lr=3"], "unknown option 'trainin.lr'; did you mean 'training.lr'?"),
    (["--model-option", "deep_layer=[8]"], "did you mean 'model.deep_layers'?"),
    (["--set", "training.lr=fast"], "option 'training.lr' must be a number, got 'fast'"),
    (["--set", "training.epochs=2.5"], "option 'training.epochs' must be an integer"),
    (["--model-option", "task=regression"], "task is not a model option"),
    (["--monitor", "auc", "--task", "regression"], "'auc' is not a regression metric"),
    (["--lr", "-1"], "lr must be positive, got -1.0"),
    (["--set", "training.lr"], "--set takes section.key=value"),
])
def test_bad_options_are_one_line_errors(argv, message, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x" / "model.json").exists()


def test_config_file_errors_name_the_key(tmp_path, capsys):
    bad = tmp_path / "run.toml"
    bad.write_text("[training]\nlearning_rate = 0.1\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "unknown option 'training.learning_rate'" in capsys.readouterr().err
    bad.write_text("[trainig]\nlr = 0.1\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "unknown config section 'trainig'; did you mean 'training'?" in capsys.readouterr().err
    bad.write_text("[training\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "is not valid TOML" in capsys.readouterr().err


def test_schema_file_and_flags_conflict(data, tmp_path, capsys):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"label": "y", "dense": ["a"], "categorical": ["b"],
                                  "task": "binary"}))
    csv = tmp_path / "t.csv"
    csv.write_text("y,a,b\n1,0.5,x\n0,0.1,y\n" * 20)
    assert main(["train", "--data", str(csv), "--schema", str(schema), "--task", "regression",
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "schema.task is 'regression' but the schema file" in capsys.readouterr().err
    # Criteo's layout is fixed: naming other columns is a conflict, not silently ignored
    assert main(["train", "--data", str(data / "train.tsv"), "--dense", "I1",
                 "--out", str(tmp_path / "y"), "--no-progress"]) == 2
    assert "the Criteo layout" in capsys.readouterr().err


def test_task_applies_to_criteo_files(data, tmp_path):
    """--task is no longer ignored for Criteo data (it was, silently, before)."""
    out = tmp_path / "reg"
    assert main(["train", "--data", str(data / "train.tsv"), "--task", "regression",
                 "--out", str(out), *TRAIN]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["table_schema"]["task"] == "regression"
    assert "rmse" in meta["refit"]["first_pass"]["valid_metrics"]  # the refit's first pass


def test_help_lists_every_option_with_its_default_once(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for _key, flag, tp, _, default, _ in config_flags():
        shown = flag if not (tp is bool and default) else "--no-" + flag[2:]
        assert len(re.findall(rf"^\s+{re.escape(shown)}(?=[ ,\n])", text, re.M)) == 1, shown
    assert text.count("(default:") == len(config_flags()) + 1  # and --out
    for option in ("--config", "--set", "--sparse-lr", "--warmup-steps", "--exclude"):
        assert option in text
    # the model families' options, from the registry, with their defaults
    assert "dcn-mix:" in text and "deep_layers = 256,128" in text


def test_choices_come_from_the_registries(capsys):
    from crossrank.models import list_models
    from crossrank.train.metrics import HIGHER_IS_BETTER
    from crossrank.train.optim import OPTIMIZERS

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join(["auto", *list_models()]) + "}" in text
    assert "{" + ",".join(OPTIMIZERS) + "}" in text
    # --monitor also takes LABEL/METRIC (multi-task): the metrics are listed in its help
    assert ", ".join(HIGHER_IS_BETTER) in text


def test_a_bug_is_not_reported_as_a_user_error(monkeypatch, capsys):
    import crossrank.cli.commands as commands

    def broken(args):
        return {}["missing"]  # a KeyError from a bug

    monkeypatch.setattr(commands, "run_demo_for_test", broken, raising=False)
    parser = build_parser()
    monkeypatch.setattr("crossrank.cli.build_parser", lambda: parser)
    demo = parser._subparsers._group_actions[0].choices["demo"]  # type: ignore[union-attr]
    demo.set_defaults(func=broken)
    with pytest.raises(KeyError):
        main(["demo"])
    assert "internal error (a bug in crossrank" in capsys.readouterr().err
