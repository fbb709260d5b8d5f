"""Command-line interface: thin; parses arguments, calls the library, prints.

Errors a user can cause (bad files, bad options, bad rows) print one line and exit 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

DEFAULT_OUT = "runs/latest"


def _cmd_demo(args: argparse.Namespace) -> int:
    from crossrank.demo import run_demo

    run_demo(seed=args.seed)
    return 0


def _parse_model_options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON (``rank=64``, ``deep_layers=[256,128]``) or strings."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--model-option must look like key=value, got {pair!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(x for x in text.split(",") if x) if text else ()


def _table_schema(args: argparse.Namespace):
    from crossrank.data import TableSchema, load_schema

    if args.schema:
        return load_schema(args.schema)
    if args.label or args.dense or args.categorical:
        return TableSchema(label=args.label, dense=_names(args.dense),
                           categorical=_names(args.categorical), id_column=args.id_column,
                           task=args.task or "binary")
    return None


def _launch_torchrun(nproc: int, argv: Sequence[str]) -> int:
    """``crossrank train --nproc N ...`` = ``torchrun --nproc_per_node=N -m crossrank train ...``."""
    import subprocess

    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "crossrank", *rest]
    return subprocess.call(command)


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    from crossrank.pipeline import EncoderOptions, train_from_data
    from crossrank.train.config import TrainConfig
    from crossrank.train.distributed import cleanup, init_distributed

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_torchrun(args.nproc, args.argv)
    world = init_distributed()
    try:
        # inside the try: a bad option must still leave the process group on every rank
        device = str(world.device) if world.is_distributed else args.device
        config = TrainConfig(
            model=args.model, model_config=_parse_model_options(args.model_option),
            embedding_dim=args.embedding_dim, optimizer=args.optimizer, lr=args.lr,
            weight_decay=args.weight_decay,
            batch_size=args.batch_size, epochs=args.epochs, schedule=args.schedule,
            grad_clip=args.grad_clip, patience=args.patience, monitor=args.monitor,
            valid_fraction=args.valid_fraction, seed=args.seed, threads=args.threads,
            device=device, progress=not args.no_progress,
        )
        encoder = EncoderOptions(dense_transform=args.dense_transform,
                                 missing_indicator=args.missing_indicator,
                                 min_count=args.min_count, hash_buckets=args.hash_buckets)
        result = train_from_data(
            data=args.data, fmt=args.format, table_schema=_table_schema(args), config=config,
            encoder_options=encoder, out_dir=args.out, on_bad_rows=args.on_bad_rows,
            rejects_path=args.rejects, resume=args.resume, synthetic_rows=args.synthetic_rows,
        )
    finally:
        cleanup()
    if not world.is_main:
        return 0
    print(f"best epoch {result.best_epoch}: "
          + ", ".join(f"valid {k} {v:.5f}" for k, v in result.best_metrics.items() if k != "rows"))
    print(f"model written to {args.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from crossrank.pipeline import evaluate_on_data

    metrics = evaluate_on_data(args.model_dir, data=args.data, fmt=args.format,
                               on_bad_rows=args.on_bad_rows, rejects_path=args.rejects)
    print(json.dumps(metrics, indent=1))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from crossrank.pipeline import predict_on_data

    rows = predict_on_data(args.model_dir, data=args.data, fmt=args.format, out_path=args.out,
                           on_bad_rows=args.on_bad_rows, rejects_path=args.rejects)
    print(f"wrote {rows} scores to {args.out}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from crossrank.pipeline import explain_model_dir

    report = explain_model_dir(args.model_dir, data=args.data, fmt=args.format,
                               out_dir=args.out, top_k=args.top_k, measure=args.measure)
    print(report)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from crossrank.bench import run_training_benchmark

    print(run_training_benchmark(steps=args.steps, batch=args.batch_size, threads=args.threads))
    return 0


def _add_data_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--data", required=required, metavar="PATH",
                   help="a file, a directory of shards or a glob (TSV/CSV/Parquet)")
    p.add_argument("--format", choices=("criteo", "csv", "parquet"), default=None,
                   help="file format (default: from the extension; .tsv/.txt = criteo)")
    p.add_argument("--on-bad-rows", choices=("error", "skip"), default="error",
                   help="stop at the first bad row with file/line/column (default), or skip bad "
                        "rows, count them and write them to the rejects file")
    p.add_argument("--rejects", metavar="PATH", default=None,
                   help="where skipped rows go (default: rejects.jsonl in the output directory)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossrank",
        description="Ranking and CTR models that learn explicit feature crosses "
                    "(DCN, DCN-V2, DCN-Mix, DLRM).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="reproduce the two published DCN experiments (CPU, ~1 min)",
                          description="Reproduce the DCN write-ups' polynomial and almond "
                                      "experiments on generated data and show the learned crosses.")
    demo.add_argument("--seed", type=int, default=0, help="seed for initialisation and shuffling")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="train a model (no --data: on synthetic Criteo-like clicks)",
                           description="Train on a click log; without --data, on a synthetic "
                                       "Criteo-shaped data set with planted feature crosses.")
    _add_data_args(train, required=False)
    train.add_argument("--schema", metavar="JSON", help="schema file: label, dense, categorical, "
                       "id_column, task (Criteo files need none)")
    train.add_argument("--label", help="label column (CSV/Parquet without --schema)")
    train.add_argument("--dense", help="comma-separated dense columns")
    train.add_argument("--categorical", help="comma-separated categorical columns")
    train.add_argument("--id-column", help="row id column, carried through to predictions")
    train.add_argument("--task", choices=("binary", "regression"), default=None,
                       help="log-loss on 0/1 labels (binary) or MSE (regression)")
    train.add_argument("--model", choices=("dcn", "dcn-mix", "dlrm", "dnn"), default="dcn",
                       help="model family (default: dcn, i.e. DCN-V2)")
    train.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                       help="model option, repeatable, e.g. rank=64, structure=parallel, "
                            "deep_layers=[256,128], fm_dim=32, interaction=dcn")
    train.add_argument("--embedding-dim", type=int, default=16, help="embedding dim D")
    train.add_argument("--optimizer", choices=("adam", "adagrad", "sgd"), default="adam",
                       help="optimizer (embeddings get its sparse variant when sparse_gradients)")
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    train.add_argument("--weight-decay", type=float, default=0.0,
                       help="L2 on every dense parameter (e.g. 3e-4 for MovieLens)")
    train.add_argument("--batch-size", type=int, default=512, help="mini-batch size")
    train.add_argument("--epochs", type=int, default=10, help="maximum epochs")
    train.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                       help="learning-rate schedule")
    train.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm")
    train.add_argument("--patience", type=int, default=2,
                       help="epochs without validation improvement before stopping")
    train.add_argument("--monitor", choices=("logloss", "auc", "rmse"), default=None,
                       help="validation metric for early stopping (default logloss / rmse)")
    train.add_argument("--valid-fraction", type=float, default=0.1,
                       help="last fraction of the training rows held out for validation")
    train.add_argument("--dense-transform", choices=("log1p", "standardize", "none"),
                       default="log1p", help="dense feature transform")
    train.add_argument("--missing-indicator", action="store_true",
                       help="add a 0/1 column per dense feature marking missing values")
    train.add_argument("--min-count", type=int, default=1,
                       help="categorical values seen fewer times become out-of-vocabulary")
    train.add_argument("--hash-buckets", type=int, default=None,
                       help="hash categorical values into this many buckets instead of a vocabulary")
    train.add_argument("--synthetic-rows", type=int, default=50_000,
                       help="rows of synthetic data when no --data is given")
    train.add_argument("--seed", type=int, default=0, help="seed (runs are deterministic on the CPU)")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument("--device", default="cpu", help="cpu or cuda")
    train.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from the last checkpoint in --out")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--nproc", type=int, default=1,
                       help="data-parallel processes on this machine (runs torchrun for you; "
                            "same as torchrun --nproc_per_node=N -m crossrank train ...)")
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="metrics of a trained model on labelled data")
    evaluate.add_argument("model_dir", help="directory written by crossrank train")
    _add_data_args(evaluate, required=True)
    evaluate.set_defaults(func=_cmd_evaluate)

    pred = sub.add_parser("predict", help="score rows: one score per input row, in input order")
    pred.add_argument("model_dir", help="directory written by crossrank train")
    _add_data_args(pred, required=True)
    pred.add_argument("--out", default="scores.csv", help="output CSV (id column first if any)")
    pred.set_defaults(func=_cmd_predict)

    explain = sub.add_parser("explain", help="which feature crosses the model learned")
    explain.add_argument("model_dir", help="directory written by crossrank train")
    explain.add_argument("--data", default=None,
                         help="data for mixture gate shares (DCN-Mix only)")
    explain.add_argument("--format", choices=("criteo", "csv", "parquet"), default=None)
    explain.add_argument("--out", default=None, help="output directory (default: MODEL_DIR/explain)")
    explain.add_argument("--top-k", type=int, default=20, help="field pairs in the ranked table")
    explain.add_argument("--measure", choices=("frobenius", "rms"), default="frobenius",
                         help="block norm ||W[f,g]||_F (the DCN-V2 paper's), or rms: divided by "
                              "sqrt(block size), fair between 1-column dense and D-column fields")
    explain.set_defaults(func=_cmd_explain)

    bench = sub.add_parser("bench", help="CPU training speed of DLRM-DCN beside peers' numbers")
    bench.add_argument("--steps", type=int, default=30, help="timed steps")
    bench.add_argument("--batch-size", type=int, default=2048)
    bench.add_argument("--threads", type=int, default=2)
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, FileNotFoundError, PermissionError, KeyError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"crossrank {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"crossrank {args.command}: interrupted", file=sys.stderr)
        return 130
