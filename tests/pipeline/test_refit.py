"""training.refit (on by default): early stopping on the validation rows picks E, then a fresh
model trained on every row for E epochs is saved; it equals a run on all the rows for E epochs
bit for bit, survives a kill during the refit, and says it has no held-out validation metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import crossrank.pipeline.refit as refit_module
import crossrank.train.loop as loop_module
from crossrank.cli import main
from crossrank.data import write_default_synthetic
from crossrank.errors import ConfigError
from crossrank.pipeline import build_run_config, train_run
from crossrank.pipeline.config_file import read_config_file
from crossrank.train.loop import Trainer
from crossrank.tune.space import build_space

SMALL = {"model": {"embedding_dim": 4, "deep_layers": [8], "cross": {"rank": 4}},
         "training": {"batch_size": 256, "epochs": 6, "patience": 1, "seed": 1, "threads": 1,
                      "progress": False, "lr": 3e-3}}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("refit") / "train.tsv"
    write_default_synthetic(path, 3000, seed=7)
    return path


def _run(data: Path, **training):
    return build_run_config(SMALL, {"data": {"path": str(data)}, "training": training})


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.fixture(scope="module")
def refitted(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("refitted") / "run"
    result = train_run(_run(data), out, verbose=False)  # the default
    assert result.refit and result.best_metrics  # the first pass's validation metrics
    return out


def test_the_refit_equals_a_run_on_every_row_for_the_chosen_epochs(data, refitted, tmp_path):
    meta = json.loads((refitted / "model.json").read_text())
    epochs = meta["refit"]["epochs"]
    first = [json.loads(x) for x in (refitted / "metrics.jsonl").read_text().splitlines()]
    # early stopping chose an epoch before the last one the first pass ran
    assert 2 <= epochs < len(first) and meta["refit"]["first_pass"]["best_epoch"] == epochs
    assert meta["refit"]["rows"] == 3000 and meta["refit"]["validation_rows"] == 300
    # never the first pass's validation metric presented as the refit model's
    assert meta["metrics"] == {} and "no held-out validation metric" in meta["refit"]["note"]
    assert meta["refit"]["first_pass"]["valid_metrics"]["logloss"] == pytest.approx(
        first[epochs - 1]["valid"]["logloss"])
    direct = tmp_path / "direct"
    train_run(_run(data, valid_fraction=0.0, epochs=epochs, patience=epochs), direct,
              verbose=False)
    refit_weights = load_file(str(refitted / "model.safetensors"))
    assert _same(refit_weights, load_file(str(direct / "latest.safetensors")))  # epoch E's
    # and the first pass's best model (same epochs, 90% of the rows) is another one
    assert not _same(refit_weights, load_file(str(refitted / "latest.safetensors")))


class _Killed(Exception):
    pass


def test_a_kill_during_the_refit_resumes_the_refit(data, refitted, tmp_path, monkeypatch):
    class KilledAfterOneEpoch(Trainer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)

            def kill(record) -> None:
                raise _Killed

            self.on_epoch = kill

    out = tmp_path / "run"
    monkeypatch.setattr(refit_module, "Trainer", KilledAfterOneEpoch)
    with pytest.raises(_Killed):
        train_run(_run(data), out, verbose=False)
    # the first pass's best model is still the directory's model until the refit is done
    assert "refit" not in json.loads((out / "model.json").read_text())
    monkeypatch.undo()
    first_log = (out / "metrics.jsonl").read_text()
    result = train_run(_run(data), out, resume=True, verbose=False)
    assert result.refit
    assert (out / "metrics.jsonl").read_text() == first_log  # the first pass is not re-run
    refit_epochs = [json.loads(x)["epoch"]
                    for x in (out / "refit" / "metrics.jsonl").read_text().splitlines()]
    assert refit_epochs == list(range(1, result.best_epoch + 1))
    assert _same(load_file(str(out / "model.safetensors")),
                 load_file(str(refitted / "model.safetensors")))


def test_refit_round_trips_through_run_toml_and_prints_its_line(data, refitted, capsys,
                                                               tmp_path):
    assert read_config_file(refitted / "run.toml")["training"]["refit"] is True
    assert main(["train", "--config", str(refitted / "run.toml"), "--out",
                 str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert "refit: the saved model was then trained on every training row" in out
    assert _same(load_file(str(tmp_path / "again" / "model.safetensors")),
                 load_file(str(refitted / "model.safetensors")))


@pytest.mark.parametrize("argv, says", [
    (["--no-refit"], ""),
    (["--valid-fraction", "0"], ""),  # no validation rows: nothing chose the epochs
    (["--set", "training.refit=true", "--valid-fraction", "0.0001"],  # 0 of 3,000 rows
     "no refit: the validation split holds out no row (too few rows)"),
    (["--refit-max-rows", "2999"],  # larger data than the limit: one training only
     "no refit: 3,000 rows > training.refit_max_rows 2,999"),
])
def test_no_refit_without_validation_rows_or_when_turned_off(argv, says, data, tmp_path,
                                                             capsys):
    out = tmp_path / "x"
    assert main(["train", "--data", str(data), "--out", str(out), "--no-progress",
                 "--epochs", "2", *argv]) == 0
    printed = capsys.readouterr().out
    assert says in printed and not any(line.startswith("refit") for line in printed.splitlines())
    meta = json.loads((out / "model.json").read_text())
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    # the model is the first pass's best epoch, with its validation metrics where it has them
    best = next(r for r in records if r["epoch"] == meta["epoch"])
    assert "refit" not in meta and meta["metrics"] == best.get("valid", {})
    assert bool(meta["metrics"]) == (argv[0] in ("--no-refit", "--refit-max-rows"))
    assert not (out / "refit").exists()


def test_a_resume_with_more_epochs_continues_the_first_pass_then_refits(data, tmp_path):
    out = tmp_path / "run"
    short = train_run(_run(data, epochs=2, patience=5), out, verbose=False)
    assert short.refit and short.best_epoch <= 2
    longer = train_run(_run(data, epochs=4, patience=5), out, resume=True, verbose=False)
    first = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert first == [1, 2, 3, 4] and longer.refit
    meta = json.loads((out / "model.json").read_text())
    assert meta["refit"]["epochs"] == longer.best_epoch
    refit_epochs = [json.loads(x)["epoch"]
                    for x in (out / "refit" / "metrics.jsonl").read_text().splitlines()]
    assert refit_epochs == list(range(1, longer.best_epoch + 1))  # afresh, once


def test_refit_is_refused_in_a_search_space():
    with pytest.raises(ConfigError, match="a trial is scored on its validation rows"):
        build_space({"space": {"training.refit": [True, False]}}, {})


def test_a_multi_task_run_refits_for_the_epochs_its_monitor_chose(tmp_path, capsys):
    from crossrank.data.synthetic import make_synthetic_clicks
    from crossrank.data.writers import write_table

    table = make_synthetic_clicks(1500, seed=3, num_dense=2, num_categorical=4, vocab_size=20,
                                  planted_pairs=((0, 1),), planted_triples=(),
                                  conversion_pairs=((0, 2),))
    table = table.rename_columns(["click" if n == "label" else n for n in table.column_names])
    write_table(table, tmp_path / "d.csv", fmt="csv")
    out = tmp_path / "m"
    assert main(["train", "--data", str(tmp_path / "d.csv"), "--out", str(out), "--label",
                 "click,conversion", "--epochs", "3", "--no-progress",
                 "--model-option", "deep_layers=[8]", "--model-option",
                 "multitask.tower_layers=[4]", "--embedding-dim", "4", "--batch-size",
                 "128"]) == 0
    meta = json.loads((out / "model.json").read_text())
    first = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    best = min(first, key=lambda r: r["valid"]["mean/logloss"])["epoch"]
    assert meta["refit"]["epochs"] == best and meta["metrics"] == {}
    assert "mean/logloss" in meta["refit"]["first_pass"]["valid_metrics"]
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(tmp_path / "d.csv")]) == 0
    assert "conversion/auc" in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("text", ["{not json", '{"fit": {"best_epoch": 1}}'])
def test_a_damaged_first_pass_record_is_one_line_on_resume(text, data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), "--no-progress", "--epochs", "2",
            "--embedding-dim", "4", "--model-option", "deep_layers=[8]"]
    assert main(argv) == 0
    (out / "refit" / "first_pass.json").write_text(text)
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "first_pass.json" in err, err


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "many"])
def test_a_bad_refit_limit_is_one_line(value, data, tmp_path, capsys):
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "x"),
                 "--refit-max-rows", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refit_max_rows" in err[0].replace("-", "_"), err





def test_a_first_pass_that_never_improved_refits_for_one_epoch(data, tmp_path, capsys,
                                                               monkeypatch):
    # every epoch's validation log-loss the same: none improves on epoch 1's, which early
    # stopping then chooses (the training itself runs as ever)
    real = loop_module.model_metrics

    def flat(*args, **kwargs):
        return {**real(*args, **kwargs), "logloss": 0.7}

    monkeypatch.setattr(loop_module, "model_metrics", flat)
    out = tmp_path / "run"
    result = train_run(_run(data, epochs=3, patience=5), out)
    first = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["valid"]["logloss"] for r in first] == [0.7, 0.7, 0.7]
    assert result.refit and result.never_improved and result.best_epoch == 1
    meta = json.loads((out / "model.json").read_text())
    assert meta["never_improved"] is True
    assert meta["refit"]["epochs"] == 1 and meta["refit"]["first_pass"]["best_epoch"] == 1
    assert "never improved on epoch 1's" in capsys.readouterr().out
    # the saved model: one epoch on every row (the first pass's were on 90% of them)
    direct = tmp_path / "direct"
    train_run(_run(data, valid_fraction=0.0, epochs=1, patience=1), direct, verbose=False)
    saved = load_file(str(out / "model.safetensors"))
    assert _same(saved, load_file(str(direct / "latest.safetensors")))
    assert not _same(saved, load_file(str(out / "latest.safetensors")))


def test_with_ema_decay_the_refit_saves_the_average_after_its_epochs(data, tmp_path):
    out = tmp_path / "run"
    result = train_run(_run(data, ema_decay=0.9), out, verbose=False)
    assert result.refit
    epochs = json.loads((out / "model.json").read_text())["refit"]["epochs"]
    direct = tmp_path / "direct"
    train_run(_run(data, valid_fraction=0.0, epochs=epochs, patience=epochs, ema_decay=0.9),
              direct, verbose=False)
    state = load_file(str(direct / "state.safetensors"))  # the average after epoch E
    average = {k.removeprefix("average."): v for k, v in state.items()
               if k.startswith("average.")}
    saved, live = load_file(str(out / "model.safetensors")), load_file(
        str(direct / "latest.safetensors"))
    # a table with sparse gradients keeps its average as a residual on its live weights
    # (crossrank.train.averaging), the other weights as the average itself
    tables = {k for k in average if k.endswith("table.weight")}  # embeddings, FM factors
    assert tables and len(tables) < len(average)
    assert all((saved[k] == v).all() for k, v in average.items() if k not in tables)
    for k in tables:
        torch.testing.assert_close(saved[k], live[k] + average[k], rtol=0, atol=1e-6)
    # the live weights after E epochs are another set
    assert not _same(saved, load_file(str(direct / "latest.safetensors")))
