"""Model directories written before the renovation (commit 9337209) still load and predict the
same scores: tests/fixtures/compat_v1 holds eight of them (every family and cross variant, the
first-order and factorization-machine terms, a regression model), each with its input rows and
the scores the old ``crossrank predict`` wrote (see make_compat_v1.py there)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from crossrank.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "compat_v1"
VARIANTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "model.json").is_file())


def _scores(path: Path, header: list[str]) -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(path.open()))
    assert rows[0] == header
    return [r[0] for r in rows[1:]], np.array([float(r[1]) for r in rows[1:]])


def test_every_variant_is_covered():
    assert len(VARIANTS) == 8


@pytest.mark.parametrize("name", VARIANTS)
def test_old_model_directory_predicts_the_same_scores(name, tmp_path):
    model_dir = tmp_path / name
    shutil.copytree(FIXTURES / name, model_dir)
    out = tmp_path / "scores.csv"
    assert main(["predict", str(model_dir), "--data", str(model_dir / "input.csv"),
                 "--format", "csv", "--out", str(out)]) == 0
    ids, scores = _scores(out, ["row_id", "score", "status"])
    # written by 0.1's predict, before the status column
    old_ids, old_scores = _scores(model_dir / "scores.csv", ["row_id", "score"])
    assert ids == old_ids
    # the old file holds 8 significant digits
    np.testing.assert_allclose(scores, old_scores, rtol=1e-6, atol=1e-7)
    assert b"\r" not in out.read_bytes()


def test_old_model_directory_explains(tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(FIXTURES / "dcn_lowrank_parallel_terms", model_dir)
    assert main(["explain", str(model_dir), "--out", str(tmp_path / "explain")]) == 0
    assert (tmp_path / "explain" / "importance.json").is_file()
