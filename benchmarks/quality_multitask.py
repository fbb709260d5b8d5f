"""Multi-task on synthetic clicks with conversions: test conversion AUC of a multi-task model
(click + conversion, shared_bottom and mmoe) beside a single-task conversion model trained on
the same training file (its rows without a conversion, the unclicked ones, skipped as bad
rows), through the command line as a user runs it.

The data: :func:`crossrank.data.synthetic.make_synthetic_clicks` with conversion pairs
C1xC2 (the click's own pair) and C3xC10 (sharing C3 with the click's C3xC4); train and test
files are two samples (``seed`` 2s, 2s+1) of one world (``world_seed`` s).

Run: .venv/bin/python benchmarks/quality_multitask.py [--rows 50000] [--seeds 2]
(about a minute a seed on 2 cores)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
from pathlib import Path

from crossrank.cli import main
from crossrank.data.synthetic import make_synthetic_clicks
from crossrank.data.writers import write_table

COMMON = ["--no-progress", "--epochs", "6", "--patience", "1"]


def _write(path: Path, rows: int, seed: int, world: int) -> None:
    t = make_synthetic_clicks(rows, seed=seed, world_seed=world,
                              conversion_pairs=((0, 1), (2, 9)))
    t = t.rename_columns(["click" if n == "label" else n for n in t.column_names])
    write_table(t, path, fmt="csv")


def _evaluate(model: Path, data: Path, *extra: str) -> dict[str, float]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if main(["evaluate", str(model), "--data", str(data), *extra]) != 0:
            raise RuntimeError(f"evaluate {model} failed")
    text = out.getvalue()  # the JSON, after any line about skipped rows
    return json.loads(text[text.index("{"):])


def _train(argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        if main(["train", *argv, *COMMON]) != 0:
            raise RuntimeError(f"train {argv} failed")


def run(rows: int, seed: int, work: Path) -> dict[str, float]:
    train, test = work / f"train{seed}.csv", work / f"test{seed}.csv"
    _write(train, rows, 2 * seed, seed)
    _write(test, rows // 2, 2 * seed + 1, seed)
    out: dict[str, float] = {}
    for arch in ("shared_bottom", "mmoe"):
        model = work / f"{arch}{seed}"
        _train(["--data", str(train), "--out", str(model), "--label", "click,conversion",
                "--model-option", f"multitask.arch={arch}", "--seed", str(seed)])
        m = _evaluate(model, test)
        out[f"{arch} click"], out[f"{arch} conversion"] = m["click/auc"], m["conversion/auc"]
    single = work / f"single{seed}"
    _train(["--data", str(train), "--out", str(single), "--label", "conversion", "--exclude",
            "click", "--on-bad-rows", "skip", "--rejects", str(work / "rejects.jsonl"),
            "--model-option", "terms.fm_dim=0",  # like for like: multi-task takes no FM term
            "--seed", str(seed)])
    out["single-task conversion"] = _evaluate(single, test, "--on-bad-rows", "skip",
                                              "--rejects", str(work / "r2.jsonl"))["auc"]
    return out


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run(args.rows, seed, Path(tmp)) for seed in range(args.seeds)]
    print(f"test AUC, mean of {args.seeds} seeds, {args.rows:,} training rows")
    print(f"{'model':<28} {'AUC':>8}  per seed")
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"{key:<28} {statistics.mean(values):8.4f}  "
              + " ".join(f"{v:.4f}" for v in values))


if __name__ == "__main__":
    main_cli()
