"""The argument parser of the ``crossrank`` command."""

from __future__ import annotations

import argparse

from crossrank.cli.commands import (
    DEFAULT_OUT,
    _cmd_bench,
    _cmd_demo,
    _cmd_evaluate,
    _cmd_explain,
    _cmd_predict,
    _cmd_train,
)


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
