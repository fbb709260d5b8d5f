"""MovieLens-100K rating regression with the TensorFlow Recommenders DCN tutorial's features
(user id, movie id, gender, zip code, occupation, bucketized age), 80/20 random split: test
RMSE, mean over seeds, beside keras-rs' numbers on the same split.

Reads ../shared/data/movielens-100k (never copied into the repository).
Run: .venv/bin/python benchmarks/quality_movielens.py [--seeds 5] [--model dcn]
(about 7 minutes a seed on one core; ``--first-seed 0 --seeds 3 --threads 1`` and
``--first-seed 3 --seeds 2 --threads 1`` side by side use both cores of a 2-core machine)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from crossrank.data import EncodedDataset, FeatureEncoder, load_movielens_100k, movielens_schema
from crossrank.models import FeatureSchema, build_model
from crossrank.train.config import TrainConfig
from crossrank.train.loop import Trainer, evaluate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "movielens-100k"
PEERS = [("keras-rs DCN (published)", 0.934), ("keras-rs low-rank DCN (published)", 0.937),
         ("keras-rs DNN (published)", 0.939)]
# The factorization machine term (terms.fm_dim, terms.fm_l2: its own user x movie factors with
# matrix factorization's per-occurrence L2) is what took the DCN from 0.9174 to 0.9148.
DEFAULT_OPTIONS = {"dcn": {"deep_layers": [192, 192], "cross": {"rank": 16}, "dropout": 0.4,
                           "embedding_l2": 1e-4, "terms": {"fm_dim": 32, "fm_l2": 0.05}},
                   "dnn": {"deep_layers": [192, 192], "dropout": 0.4, "embedding_l2": 1e-4}}


def run(seed: int, model_name: str, options: dict, args) -> float:
    table = load_movielens_100k(DATA)
    order = np.random.default_rng(seed).permutation(table.num_rows)
    cut = int(0.8 * table.num_rows)
    train_table, test_table = table.take(order[:cut]), table.take(order[cut:])
    encoder = FeatureEncoder(movielens_schema()).fit([train_table])  # train rows only
    train = EncodedDataset.from_batch(encoder.transform(train_table))
    test = EncodedDataset.from_batch(encoder.transform(test_table))
    n_valid = int(len(train) * 0.1)
    fit, valid = train.rows(0, len(train) - n_valid), train.rows(len(train) - n_valid, len(train))
    schema = FeatureSchema(dense=encoder.dense_names, categorical=encoder.sparse_names,
                           vocab_sizes=encoder.vocab_sizes, embedding_dim=args.embedding_dim)

    def train_model(rows, valid_rows, epochs: int):
        torch.manual_seed(seed)
        model = build_model(model_name, schema, options, task="regression")
        config = TrainConfig(lr=args.lr, weight_decay=args.weight_decay,
                             batch_size=args.batch_size, epochs=epochs,
                             patience=args.patience, seed=seed, progress=False)
        with tempfile.TemporaryDirectory() as out:
            result = Trainer(model, config, out_dir=out, verbose=False).fit(rows, valid_rows)
        return model, result.best_epoch

    model, best_epoch = train_model(fit, valid, args.epochs)
    if args.refit:
        # Early stopping on the validation rows chose the epoch count; now train on every
        # training row (the validation rows too) for that many epochs.
        model, _ = train_model(train, None, best_epoch)
    return evaluate(model, test)["rmse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="run seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (1 per process when running seed ranges side by side)")
    parser.add_argument("--model", default="dcn", choices=sorted(DEFAULT_OPTIONS))
    parser.add_argument("--option", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--refit", action=argparse.BooleanOptionalAction, default=True,
                        help="after early stopping, retrain on all training rows for the "
                             "best epoch count")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: the shared data sits beside the repository")
    options = dict(DEFAULT_OPTIONS[args.model])
    for pair in args.option:
        key, _, value = pair.partition("=")
        options[key] = json.loads(value)
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rmse = [run(seed, args.model, options, args) for seed in seeds]
    for seed, value in zip(seeds, rmse):
        print(f"seed {seed}: test RMSE {value:.4f}", flush=True)
    sd = statistics.stdev(rmse) if len(rmse) > 1 else 0.0
    print(f"MovieLens-100K, {args.model} {json.dumps(options)}, D={args.embedding_dim}, "
          f"lr={args.lr}, weight_decay={args.weight_decay}, patience={args.patience}, "
          f"refit={args.refit}, "
          f"seeds {seeds.start}-{seeds.stop - 1} (80/20 random split per seed)")
    print(f"{'model':<40} {'test RMSE':>10}")
    print(f"{'crossrank ' + args.model + ' (mean)':<40} {statistics.mean(rmse):>10.4f}   "
          f"(sd {sd:.4f})")
    for name, value in PEERS:
        print(f"{name:<40} {value:>10.3f}")


if __name__ == "__main__":
    main()
