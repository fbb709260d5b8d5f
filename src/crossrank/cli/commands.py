"""One function per command: each reads the parsed arguments, calls the library, prints."""

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

    from crossrank.distributed import cleanup, init_distributed
    from crossrank.pipeline import EncoderOptions, train_from_data
    from crossrank.train.config import TrainConfig

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
