"""Defaults study: ``crossrank train`` with its defaults (only the flags a user must give for
the data: path, format, label, categorical columns, task) on several small data sets, scored
on test rows no run saw; beside candidate defaults, a tuned linear baseline and the hand-tuned
figures.

Data sets (``--data``, repeatable; default all):

* ``criteo``: Criteo head-10k, first 8,000 rows train (validation carved from their end),
  last 2,000 test (as ``benchmarks/quality_criteo.py``).
* ``ml-reg``: MovieLens-100K, the TensorFlow Recommenders features, rating regression, an
  80/20 random split per seed (as ``benchmarks/quality_movielens.py``).
* ``ml-bin``: the same rows and splits, label ``liked`` = rating >= 4 (binary).
* ``synthetic``: ``crossrank train`` without ``--data`` (50,000 synthetic rows written with
  the run's seed); test: 10,000 rows of the same click model written with another seed.
* ``criteo-csv``: the 200-row Criteo CSV sample, first 150 rows train, last 50 test: a smoke
  case (its test metric is noise).
* ``criteo-N`` (N < 8,000, e.g. ``criteo-1200``): a point of the small-data learning curve:
  Criteo head-10k's first N rows train (validation carved from their end), the same 2,000
  test rows as ``criteo``.
* ``synthetic-N``: the same for the synthetic default: N rows of its click model (written
  with the run's seed) train, the 10,000 test rows of ``synthetic``; ``ml-reg-N`` and
  ``ml-bin-N``: the first N training rows of each seed's MovieLens split, its test rows.

Candidates (``--candidate``, repeatable; default ``old`` and ``defaults``): ``defaults`` is
whatever the configs declare now (no option given); the others are fixed option sets below.

The linear baseline is scikit-learn on the same encoding (vocabulary fitted on the training
rows, min_count 1; dense features log1p then standardized): one-hot categorical ids and the
dense columns, ``LogisticRegression`` (binary) or ``Ridge`` (regression), its C (alpha)
chosen on the validation rows crossrank validates on (the last 10% of the training rows) by
log-loss (RMSE) from a grid, then refitted on all training rows.

Reads ../shared/data (never copied into the repository).
Run: .venv/bin/python benchmarks/defaults_study.py [--data criteo] [--seeds 5]
     [--candidate old --candidate defaults] [--threads 1]
(a quick check: --data criteo-csv --seeds 1)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

from crossrank.data import FeatureEncoder, load_movielens_100k, movielens_schema
from crossrank.data.readers import read_table
from crossrank.data.synthetic_default import write_default_synthetic
from crossrank.pipeline import build_run_config, evaluate_on_data, train_run
from crossrank.pipeline.model_dir import load_model_dir
from crossrank.pipeline.run_config import merge_tables

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CRITEO = SHARED / "criteo" / "criteo_kaggle_head10k.tsv"
CRITEO_CSV = SHARED / "criteo" / "criteo_sample200.csv"
MOVIELENS = SHARED / "movielens-100k"
DATA_SETS = ("criteo", "ml-reg", "ml-bin", "synthetic", "criteo-csv")
# the auto model's network, whatever the data's size (auto is linear on small data)
NETWORK = {"model": {"name": "dcn"}}

# Earlier defaults and candidates, given explicitly so that they stay measurable after the
# configs change: each names the FM term, the refit and the weight average it was measured
# with (none, off, none).
NO_FM = {"fm_dim": 0, "fm_l2": 0.0}
NO_REFIT = {"refit": False, "ema_decay": 0}
# the defaults before 2026-12-01
OLD = {"encoder": {"min_count": 1},
       "model": {"embedding_dim": 16, "deep_layers": [256, 128], "dropout": 0.0,
                 "embedding_l2": 0.0, "sparse_gradients": False,
                 "cross": {"rank": None, "num_layers": 3}, "terms": NO_FM},
       "training": {"lr": 1e-3, "batch_size": 512, "epochs": 10, "patience": 2, **NO_REFIT}}
# regularization that scales with the data: rare values (seen < 10 times) to
# out-of-vocabulary, L2 on the embedding rows a batch touches, dropout, and up to 30 epochs
# with early stopping (restoring the best) deciding; sparse embedding updates
REG256 = {"encoder": {"min_count": 10},
          "model": {"embedding_dim": 16, "deep_layers": [256, 128], "dropout": 0.2,
                    "embedding_l2": 1e-4, "sparse_gradients": True, "terms": NO_FM,
                    "cross": {"rank": None, "num_layers": 3}},
          "training": {"lr": 1e-3, "batch_size": 512, "epochs": 30, "patience": 2, **NO_REFIT}}
# the defaults of 2026-12-01 (README Defaults then): reg256 with a low-rank cross of 2 layers
LOWRANK = merge_tables(REG256, {"model": {"cross": {"rank": 16, "num_layers": 2}}})
# a factorization machine term (its own K=32 factors per value, with matrix factorization's
# per-occurrence L2), as the hand-tuned MovieLens model has
FM = {"model": {"terms": {"fm_dim": 32, "fm_l2": 0.05}}}
# the refit: after early stopping chose E, a fresh model trained on all the training rows (the
# validation rows too) for E epochs (training.refit)
REFIT = {"training": {"refit": True}}
# no weight average for any task: the defaults before session 10
NO_EMA = {"training": {"ema_decay": 0}}
CANDIDATES: dict[str, dict[str, Any]] = {
    "old": OLD,
    "defaults": {},  # whatever the configs declare now: since session 10 lowrank-fm-refit
    # with the weight average (0.995) for regression
    "no-ema": NO_EMA,  # today's defaults without the weight average (= lowrank-fm-refit)
    "reg256": REG256,
    "lowrank": LOWRANK,
    "lowrank-refit": merge_tables(LOWRANK, REFIT),
    "lowrank-fm": merge_tables(LOWRANK, FM),
    "lowrank-fm-refit": merge_tables(merge_tables(LOWRANK, FM), REFIT),
    # reg256 with a smaller deep network
    "reg128": merge_tables(REG256, {"model": {"deep_layers": [128, 64]}}),
    # today's defaults with dense embedding updates (Adam on every row, every step): what the
    # tuned MovieLens model chose (session 8)
    "dense": {"model": {"sparse_gradients": False}, **NO_EMA},
    # the weight average the tuned MovieLens model chose, for every task (session 10: the
    # defaults since for regression)
    "ema": {"training": {"ema_decay": 0.995}},
    "ema-dense": {"training": {"ema_decay": 0.995}, "model": {"sparse_gradients": False}},
    "ema-999": {"training": {"ema_decay": 0.999}},
    # session 11: the network and the linear model whatever the data's size
    "network": NETWORK,
    "linear": {"model": {"name": "linear"}},
    "linear-mc1": {"model": {"name": "linear"}, "encoder": {"min_count": 1}},
    "linear-mc3": {"model": {"name": "linear"}, "encoder": {"min_count": 3}},
}
# hand-tuned figures: (metric -> value, where measured)
TUNED = {"criteo": ({"auc": 0.7406, "logloss": 0.4684},
                    "README Results, quality_criteo.py, 5 seeds, 2026-11-23"),
         "ml-reg": ({"rmse": 0.9148}, "README Results, quality_movielens.py, 5 seeds, 2026-12-01"),
         "ml-bin": ({"auc": 0.7831, "logloss": 0.5545},
                    "tune_quality.py --data movielens-binary, seed 0's split, 2026-12-02"),
         "synthetic": ({"auc": 0.9041, "logloss": 0.3126},
                       "tune_quality.py --data synthetic, seed 0's rows, 2026-12-02")}
PEERS = {"criteo": "published tuned LR 0.735 / 0.472; DeepCTR-Torch DCN 0.682 / 0.590",
         "ml-reg": "keras-rs DCN 0.934, low-rank 0.937, DNN 0.939"}
METRICS = {"criteo": ("auc", "logloss"), "ml-reg": ("rmse",), "ml-bin": ("auc", "logloss"),
           "synthetic": ("auc", "logloss"), "criteo-csv": ("auc", "logloss")}
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
ALPHA_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


def _lines_split(path: Path, cut: int, end: int, work: Path, suffix: str,
                 header: bool) -> tuple[Path, Path]:
    lines = path.read_bytes().splitlines(keepends=True)
    head, rows = (lines[:1], lines[1:]) if header else ([], lines)
    train, test = work / f"train{suffix}", work / f"test{suffix}"
    train.write_bytes(b"".join(head + rows[:cut]))
    test.write_bytes(b"".join(head + rows[cut:end]))
    return train, test


def prepare(name: str, seed: int, work: Path) -> tuple[dict[str, Any], Path, str]:
    """The run's data flags (what a user must give for this data), the test file, its format."""
    work.mkdir(parents=True, exist_ok=True)
    if name == "criteo":
        train, test = _lines_split(CRITEO, 8000, 10000, work, ".tsv", header=False)
        return {"data": {"path": str(train), "format": "criteo"}}, test, "criteo"
    if _curve_point(name, "criteo"):  # the learning curve's first N rows
        rows = _curve_point(name, "criteo")
        train, test = _lines_split(CRITEO, 8000, 10000, work, ".tsv", header=False)
        lines = train.read_bytes().splitlines(keepends=True)
        train.write_bytes(b"".join(lines[:rows]))
        return {"data": {"path": str(train), "format": "criteo"}}, test, "criteo"
    if name == "criteo-csv":
        train, test = _lines_split(CRITEO_CSV, 150, 200, work, ".csv", header=True)
        return {"data": {"path": str(train), "format": "csv"}, "schema": {"label": "label"}}, \
            test, "csv"
    if name == "synthetic" or _curve_point(name, "synthetic"):
        test = work / "test.tsv"
        write_default_synthetic(test, 10_000, seed=10_000 + seed)
        rows = _curve_point(name, "synthetic")  # synthetic-N: N rows of the same click model
        return ({"data": {"synthetic_rows": rows}} if rows else {}), test, "criteo"
    rows = _curve_point(name, "ml-reg") or _curve_point(name, "ml-bin")
    name = name.rpartition("-")[0] if rows else name  # ml-reg-N: N of ml-reg's training rows
    table = load_movielens_100k(MOVIELENS)
    order = np.random.default_rng(seed).permutation(table.num_rows)  # quality_movielens.py's
    cut = int(0.8 * table.num_rows)
    categorical = list(movielens_schema().categorical)
    if name == "ml-bin":
        liked = pc.cast(pc.greater_equal(table["user_rating"], 4), pa.int64())
        table = table.drop_columns(["user_rating"]).append_column("liked", liked)
        schema = {"label": "liked", "categorical": categorical, "task": "binary"}
    else:
        schema = {"label": "user_rating", "categorical": categorical, "task": "regression"}
    train, test = work / "train.csv", work / "test.csv"
    pa_csv.write_csv(table.take(order[:min(cut, rows) if rows else cut]), train)
    pa_csv.write_csv(table.take(order[cut:]), test)
    return {"data": {"path": str(train), "format": "csv"}, "schema": schema}, test, "csv"


def train_and_test(flags: dict[str, Any], candidate: dict[str, Any], seed: int, threads: int,
                   out: Path, test: Path, fmt: str) -> tuple[dict[str, float], float, int]:
    run = build_run_config(flags, candidate, {"training": {"seed": seed, "threads": threads,
                                                           "progress": False}})
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        result = train_run(run, out, verbose=False)
    seconds = time.perf_counter() - started
    with contextlib.redirect_stderr(io.StringIO()):  # the OOV warning of the test rows
        metrics = evaluate_on_data(out, data=str(test), fmt=fmt)
    return metrics, seconds, len(result.history)


def _design(encoder: FeatureEncoder, table: pa.Table, mean: np.ndarray | None,
            std: np.ndarray | None) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
    batch = encoder.transform(table)
    dense = batch.dense.astype(np.float64)
    if mean is None or std is None:
        mean, std = dense.mean(axis=0), dense.std(axis=0) + 1e-9
    offsets = np.concatenate([[0], np.cumsum(encoder.vocab_sizes)[:-1]])
    cols = batch.sparse + offsets  # (B, F) one column per (field, id)
    rows = np.repeat(np.arange(len(batch)), cols.shape[1])
    onehot = sp.csr_matrix((np.ones(cols.size), (rows, cols.ravel())),
                           shape=(len(batch), int(sum(encoder.vocab_sizes))))
    x = sp.hstack([sp.csr_matrix((dense - mean) / std), onehot], format="csr")
    assert batch.label is not None
    return x, batch.label.astype(np.float64), mean, std


def linear_baseline(model_dir: Path, train: str, test: Path, fmt_train: str,
                    fmt_test: str) -> dict[str, float]:
    """A tuned linear model on the training rows of the run in ``model_dir`` (its schema)."""
    _, _, _, schema = load_model_dir(model_dir)
    train_table = read_table(train, fmt=fmt_train, schema=schema)  # type: ignore[arg-type]
    test_table = read_table(test, fmt=fmt_test, schema=schema)  # type: ignore[arg-type]
    encoder = FeatureEncoder(schema).fit([train_table])
    x, y, mean, std = _design(encoder, train_table, None, None)
    xt, yt, _, _ = _design(encoder, test_table, mean, std)
    n_valid = int(0.1 * x.shape[0])
    fit, valid = slice(0, x.shape[0] - n_valid), slice(x.shape[0] - n_valid, x.shape[0])
    if schema.task == "regression":
        def make(c: float) -> Any:
            return Ridge(alpha=c)

        def loss(m: Any, xs: Any, ys: np.ndarray) -> float:
            return float(np.sqrt(mean_squared_error(ys, m.predict(xs))))
        grid = ALPHA_GRID
    else:
        def make(c: float) -> Any:
            return LogisticRegression(C=c, max_iter=2000)

        def loss(m: Any, xs: Any, ys: np.ndarray) -> float:
            return float(log_loss(ys, m.predict_proba(xs)[:, 1], labels=[0, 1]))
        grid = C_GRID
    best = min(grid, key=lambda c: loss(make(c).fit(x[fit], y[fit]), x[valid], y[valid]))
    model = make(best).fit(x, y)
    if schema.task == "regression":
        return {"rmse": loss(model, xt, yt), "c": best}
    p = model.predict_proba(xt)[:, 1]
    return {"auc": float(roc_auc_score(yt, p)), "logloss": float(log_loss(yt, p, labels=[0, 1])),
            "c": best}


def _curve_point(name: str, data: str) -> int:
    """N of a learning curve's data set ``DATA-N`` (``criteo-1200``), else 0."""
    head, _, rows = name.rpartition("-")
    return int(rows) if head == data and rows.isdigit() and int(rows) > 0 else 0


def _metrics(name: str) -> tuple[str, ...]:
    if _curve_point(name, "ml-reg"):
        return METRICS["ml-reg"]
    return METRICS.get(name, METRICS["criteo"])  # criteo-N, synthetic-N, ml-bin-N: binary


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=None,
                        help=f"one of {', '.join(DATA_SETS)}, criteo-N (N < 8000) or "
                             "synthetic-N")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--candidate", action="append", choices=sorted(CANDIDATES), default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the linear baseline")
    args = parser.parse_args()
    names = args.data or list(DATA_SETS)
    for name in names:
        if name not in DATA_SETS and not (0 < _curve_point(name, "criteo") < 8000 or any(
                _curve_point(name, data) for data in ("synthetic", "ml-reg", "ml-bin"))):
            parser.error(f"--data {name!r}: one of {', '.join(DATA_SETS)}, criteo-N (N < "
                         "8000) or synthetic-N")
    candidates = args.candidate or ["old", "defaults"]
    for path in (CRITEO, CRITEO_CSV, MOVIELENS):
        if not path.exists():
            raise SystemExit(f"{path} not found: the shared data sits beside the repository")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    # results[data][column][metric] -> values over seeds
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    linear: dict[tuple[str, int | None], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in names:
            table = results.setdefault(name, {})
            for seed in seeds:
                work = tmp / name / f"seed{seed}"
                flags, test, fmt = prepare(name, seed, work)
                for cand in candidates:
                    out = work / cand
                    metrics, seconds, epochs = train_and_test(
                        flags, CANDIDATES[cand], seed, args.threads, out, test, fmt)
                    for key in _metrics(name):
                        table.setdefault(cand, {}).setdefault(key, []).append(metrics[key])
                    table.setdefault(cand, {}).setdefault("seconds", []).append(seconds)
                    print(f"{name} seed {seed} {cand}: " + ", ".join(
                        f"{k} {metrics[k]:.4f}" for k in _metrics(name))
                        + f" ({epochs} epochs, {seconds:.1f}s)", flush=True)
                # the Criteo splits do not change with the seed: one linear fit serves all
                fixed = name.startswith("criteo")
                fit_key = (name, None if fixed else seed)
                if not args.no_baseline and fit_key not in linear:
                    train_path = flags.get("data", {}).get("path") \
                        or str(work / candidates[0] / "synthetic_train.tsv")
                    train_fmt = flags.get("data", {}).get("format") or "criteo"
                    linear[fit_key] = linear_baseline(work / candidates[0], train_path, test,
                                                  train_fmt, fmt)
                if not args.no_baseline:
                    base = linear[fit_key]
                    for key in _metrics(name):
                        table.setdefault("sklearn", {}).setdefault(key, []).append(base[key])
                    print(f"{name} seed {seed} sklearn (C/alpha {base['c']}): " + ", ".join(
                        f"{k} {base[k]:.4f}" for k in _metrics(name)), flush=True)
    columns = [*candidates, *([] if args.no_baseline else ["sklearn"])]
    print(f"\ntest metric, mean ± sd over seeds {seeds.start}..{seeds.stop - 1} "
          f"(sklearn: LogisticRegression / Ridge on one-hot, C chosen on validation)")
    print(f"{'data':<11} {'metric':<8} " + " ".join(f"{c:>17}" for c in columns)
          + "  tuned (where measured); peers")
    for name in names:
        for key in _metrics(name):
            cells = " ".join(f"{_cell(results[name].get(c, {}).get(key, [])):>17}"
                             for c in columns)
            tuned = TUNED.get(name)
            ref = f"{tuned[0][key]:.4f} ({tuned[1]})" if tuned else "-"
            peers = PEERS.get(name, "") if key == _metrics(name)[0] else ""
            print(f"{name:<11} {key:<8} {cells}  {ref}{'; ' + peers if peers else ''}")
        secs = " ".join(f"{_cell(results[name].get(c, {}).get('seconds', [])):>17}"
                        for c in candidates)
        print(f"{name:<11} {'seconds':<8} {secs}")


if __name__ == "__main__":
    main()
