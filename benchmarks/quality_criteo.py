"""Criteo head-10k quality: first 8,000 rows train (validation carved from their end), last
2,000 test; test AUC and log-loss, mean over seeds, beside the peers' published numbers.

Reads ../shared/data/criteo/criteo_kaggle_head10k.tsv (never copied into the repository).
Run: .venv/bin/python benchmarks/quality_criteo.py [--seeds 5] [--model dcn] [--option k=v ...]
     [--refit]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from crossrank.pipeline import build_run_config, evaluate_on_data, train_run

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "criteo" \
    / "criteo_kaggle_head10k.tsv"
PEERS = [("tuned logistic regression (reference)", 0.735, 0.472),
         ("DeepCTR-Torch DCN (published)", 0.682, 0.590),
         ("DeepCTR-Torch DCNMix (published)", 0.685, 0.559)]

# The configuration the README reports (small embeddings, rare values to OOV, batch norm in
# the deep part, a low learning rate and early stopping on validation log-loss). Defaults that
# changed after 2026-11-23 are pinned as measured then: no FM term, dense embedding gradients
# (the sparse default of 2026-12-01 moved seed 0's AUC by -0.0003) and no refit (--refit).
DEFAULT_OPTIONS = {"structure": "parallel", "cross": {"rank": 16, "num_layers": 2, "l2": 1e-3},
                   "deep_layers": [128, 64], "dropout": 0.2, "norm": "batch",
                   "embedding_l2": 1e-4, "sparse_gradients": False, "terms": {"fm_dim": 0}}


def split(tmp: Path) -> tuple[Path, Path]:
    lines = DATA.read_bytes().splitlines(keepends=True)
    train, test = tmp / "train.tsv", tmp / "test.tsv"
    train.write_bytes(b"".join(lines[:8000]))
    test.write_bytes(b"".join(lines[8000:10000]))
    return train, test


def run(seed: int, model: str, options: dict, args, tmp: Path, train: Path, test: Path) -> dict:
    out = tmp / f"{model}-{seed}"
    run_config = build_run_config({
        "data": {"path": str(train), "format": "criteo"},
        "encoder": {"min_count": args.min_count, "missing_indicator": args.missing_indicator},
        "model": {"name": model, "embedding_dim": args.embedding_dim, **options},
        "training": {"lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs,
                     "patience": args.patience, "valid_fraction": 0.1, "seed": seed,
                     "refit": args.refit, "ema_decay": args.ema_decay, "progress": False}})
    train_run(run_config, out, verbose=False)
    return evaluate_on_data(out, data=str(test), fmt="criteo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--model", default="dcn")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--min-count", type=int, default=10)
    parser.add_argument("--missing-indicator", action="store_true",
                        help="add a 0/1 column per dense feature marking missing values")
    parser.add_argument("--first-seed", type=int, default=0)
    # off as measured on 2026-11-23: training.refit's default (on since 2026-12-02) costs this
    # hand-tuned model 0.0023 test AUC over seeds 0-4 (0.7404 -> 0.7381)
    parser.add_argument("--refit", action=argparse.BooleanOptionalAction, default=False,
                        help="after early stopping, retrain on all training rows for the "
                             "best epoch count (training.refit)")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="validate and save an EMA of the weights (training.ema_decay)")
    parser.add_argument("--per-seed", action="store_true", help="print each seed's figures")
    args = parser.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"{DATA} not found: the shared data sits beside the repository")
    options = dict(DEFAULT_OPTIONS)
    for pair in args.option:
        key, _, value = pair.partition("=")
        options[key] = json.loads(value)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        train, test = split(tmp)
        results = [run(seed, args.model, options, args, tmp, train, test)
                   for seed in range(args.first_seed, args.first_seed + args.seeds)]
    auc = [r["auc"] for r in results]
    ll = [r["logloss"] for r in results]
    if args.per_seed:
        print("per seed: AUC " + ", ".join(f"{a:.4f}" for a in auc) + "; log-loss "
              + ", ".join(f"{b:.4f}" for b in ll))
    print(f"Criteo head-10k, {args.model} {json.dumps(options)}, D={args.embedding_dim}, "
          f"min_count={args.min_count}, missing_indicator={args.missing_indicator}, "
          f"lr={args.lr}, refit={args.refit}, ema_decay={args.ema_decay}, "
          f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}")
    print(f"{'model':<42} {'test AUC':>9} {'test logloss':>13}")
    sd = statistics.stdev(auc) if len(auc) > 1 else 0.0
    print(f"{'crossrank ' + args.model + ' (mean)':<42} {statistics.mean(auc):>9.4f} "
          f"{statistics.mean(ll):>13.4f}   (AUC sd {sd:.4f})")
    for name, a, b in PEERS:
        print(f"{name:<42} {a:>9.3f} {b:>13.3f}")


if __name__ == "__main__":
    main()
