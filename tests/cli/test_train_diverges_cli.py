"""`crossrank train` at learning rates far too high: one line and exit 2 when a loss or
gradient is NaN or infinite, a warning when the model ends no better than a constant; a
device that is not there is refused before any work."""

import json
import random

import pytest
import torch

from crossrank.cli import main

SMALL = ["--no-progress", "--model-option", "deep_layers=[8]", "--model-option", "cross.rank=2",
         "--embedding-dim", "4"]


@pytest.fixture
def regression_csv(tmp_path):
    rng = random.Random(0)
    lines = ["y,a,b,c"]
    for _ in range(2000):
        a, b, c = rng.random(), rng.random(), rng.choice("pqrs")
        lines.append(f"{3 * a - 2 * b + (c == 'p'):.4f},{a:.4f},{b:.4f},{c}")
    path = tmp_path / "reg.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _train(data, out, *extra):
    return main(["train", "--data", str(data), "--label", "y", "--dense", "a,b",
                 "--categorical", "c", "--task", "regression", "--out", str(out), *SMALL,
                 *extra])


def test_regression_at_lr_1e6_stops_in_one_line_and_writes_no_model(regression_csv, tmp_path,
                                                                      capsys):
    assert _train(regression_csv, tmp_path / "m", "--lr", "1e6", "--epochs", "3") == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("crossrank train: error: training diverged in epoch 1, update ")
    assert "the loss is nan" in err and "no model was written" in err
    assert "valid rmse nan" not in captured.out
    assert not (tmp_path / "m" / "model.safetensors").exists()
    # predict has nothing to score with
    assert main(["predict", str(tmp_path / "m"), "--data", str(regression_csv),
                 "--out", str(tmp_path / "s.csv")]) == 2
    assert not (tmp_path / "s.csv").exists()


def test_skipping_cannot_rescue_a_run_that_diverges_for_good(regression_csv, tmp_path, capsys):
    assert _train(regression_csv, tmp_path / "m", "--lr", "1e6",
                  "--on-nonfinite", "skip") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "updates so far were skipped" in err
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_binary_at_lr_3_is_reported_no_better_than_a_constant(tmp_path, capsys):
    from crossrank.data import write_default_synthetic

    write_default_synthetic(tmp_path / "t.tsv", 3000, seed=1)
    assert main(["train", "--data", str(tmp_path / "t.tsv"), "--out", str(tmp_path / "m"),
                 "--lr", "3", "--epochs", "3", *SMALL]) == 0
    out = capsys.readouterr().out
    records = [json.loads(line)
               for line in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["train_loss"] > 1e6  # finite, but blown up
    assert "warning: the model (epoch" in out and "no better than a constant" in out
    assert "(lr 3:" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_refused_before_any_work(tmp_path, capsys):
    assert main(["train", "--device", "cuda", "--out", str(tmp_path / "m"),
                 "--synthetic-rows", "500", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("crossrank train: error: device 'cuda' is not available: this PyTorch is a "
                   "CPU-only build; use --device cpu") or "no CUDA device is visible" in err
    assert not (tmp_path / "m").exists()
