"""A model directory that cannot be written (a shared or packaged model) evaluates, predicts and
explains: rejects go beside the output (predict) or into the current directory (evaluate),
never into the model directory; a place that cannot be written is an error saying where."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from crossrank.cli import main
from crossrank.data import write_default_synthetic


@contextlib.contextmanager
def read_only(directory: Path):
    """``directory`` made unwritable for real: mode 0555, and immutable when running as root
    (whom modes do not stop); skips where neither can be done."""
    os.chmod(directory, 0o555)
    immutable = False
    try:
        if os.geteuid() == 0:
            immutable = subprocess.run(["chattr", "+i", str(directory)],
                                       capture_output=True).returncode == 0
        try:
            (directory / ".probe").touch()
        except OSError:
            pass
        else:
            (directory / ".probe").unlink()
            pytest.skip("cannot make a directory read-only here")
        yield directory
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        os.chmod(directory, 0o755)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("read-only")
    write_default_synthetic(root / "train.tsv", 2000, seed=1)
    assert main(["train", "--data", str(root / "train.tsv"), "--out", str(root / "model"),
                 "--epochs", "1", "--no-progress", "--embedding-dim", "4",
                 "--model-option", "cross.rank=2", "--model-option", "deep_layers=[8]"]) == 0
    # 20 rows, two of them bad (a non-numeric dense value, too few fields)
    lines = (root / "train.tsv").read_text().splitlines()[:20]
    fields = lines[4].split("\t")
    lines[4] = "\t".join(fields[:2] + ["abc"] + fields[3:])
    lines[9] = "1\t2\t3"
    (root / "bad.tsv").write_text("".join(line + "\n" for line in lines))
    return root


@pytest.fixture
def model_dir(trained, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(trained / "model", copy)
    return copy


def _rejects(path: Path) -> list[int]:
    return [json.loads(line)["line"] for line in path.read_text().splitlines()]


def test_predict_and_evaluate_a_read_only_model(model_dir, trained, tmp_path, monkeypatch,
                                                capsys):
    before = sorted(p.name for p in model_dir.iterdir())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with read_only(model_dir):
        scores = tmp_path / "scores" / "s.csv"
        scores.parent.mkdir()
        assert main(["predict", str(model_dir), "--data", str(trained / "bad.tsv"),
                     "--on-bad-rows", "skip", "--out", str(scores)]) == 0
        assert _rejects(scores.parent / "rejects.jsonl") == [5, 10]  # beside --out
        capsys.readouterr()
        assert main(["evaluate", str(model_dir), "--data", str(trained / "bad.tsv"),
                     "--on-bad-rows", "skip"]) == 0
        out = capsys.readouterr().out
        assert "skipped 2 bad rows" in out and json.loads(out[out.index("{"):])["rows"] == 18
        assert _rejects(work / "rejects.jsonl") == [5, 10]  # the current directory
        assert main(["explain", str(model_dir), "--out", str(tmp_path / "explain")]) == 0
    assert sorted(p.name for p in model_dir.iterdir()) == before


def test_an_unwritable_place_is_named(model_dir, trained, tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked), read_only(model_dir):
        capsys.readouterr()
        assert main(["predict", str(model_dir), "--data", str(trained / "bad.tsv"),
                     "--on-bad-rows", "skip", "--out", str(locked / "s.csv")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"crossrank predict: error: cannot write the rejects file "
                              f"{locked / 'rejects.jsonl'} (")
        assert err.endswith("give --rejects PATH in a directory you can write to")
        monkeypatch.chdir(locked)
        assert main(["evaluate", str(model_dir), "--data", str(trained / "bad.tsv"),
                     "--on-bad-rows", "skip"]) == 2
        assert f"cannot write the rejects file {locked / 'rejects.jsonl'}" in \
            capsys.readouterr().err
        assert main(["explain", str(model_dir)]) == 2
        assert capsys.readouterr().err.strip() == (
            f"crossrank explain: error: cannot write the explanation into {model_dir}/explain "
            "(the model directory is not writable); give --out DIR")
