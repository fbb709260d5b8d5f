"""One function per command: each reads the parsed arguments, calls the library, prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crossrank.pipeline.run_config import RunConfig

DEFAULT_OUT = "runs/latest"


def _cmd_demo(args: argparse.Namespace) -> int:
    from crossrank.demo import run_demo

    run_demo(seed=args.seed)
    return 0


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


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run the arguments describe: the config file, then the flags typed, then
    ``--model-option`` and ``--set`` overrides, each layer over the one before."""
    from crossrank.cli.options import flags_given
    from crossrank.pipeline.config_file import apply_overrides, read_config_file
    from crossrank.pipeline.run_config import build_run_config, merge_tables

    layered = merge_tables(read_config_file(args.config) if args.config else {},
                           flags_given(args))
    layered = apply_overrides(layered, args.model_option, flag="--model-option",
                              prefix="model.")
    layered = apply_overrides(layered, args.set, flag="--set")
    return build_run_config(layered)


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from crossrank.distributed import cleanup, init_distributed
    from crossrank.pipeline import train_run

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_torchrun(args.nproc, args.argv)
    world = init_distributed()
    try:
        # inside the try: a bad option must still leave the process group on every rank
        run = run_config_from_args(args)
        if world.is_distributed:
            run = run.replace(training=dataclasses.replace(run.training, device=str(world.device)))
        result = train_run(run, args.out, resume=args.resume)
    finally:
        cleanup()
    if not world.is_main:
        return 0
    print(f"best epoch {result.best_epoch}: "
          + ", ".join(f"valid {k} {v:.5f}" for k, v in result.best_metrics.items() if k != "rows"))
    print(f"model written to {args.out} (its configuration: {args.out}/run.toml)")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from crossrank.pipeline import evaluate_on_data

    metrics = evaluate_on_data(args.model_dir, data=args.data, fmt=args.format,
                               on_bad_rows=args.on_bad_rows, rejects_path=args.rejects)
    print(json.dumps(metrics, indent=1))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from crossrank.pipeline import predict_on_data

    done = predict_on_data(args.model_dir, data=args.data, fmt=args.format, out_path=args.out,
                           on_bad_rows=args.on_bad_rows, rejects_path=args.rejects)
    unscored = f", {done.lines - done.scored} not (their status says why)" if \
        done.lines > done.scored else ""
    print(f"wrote {done.lines} rows to {args.out}: {done.scored} scored{unscored}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from crossrank.pipeline import explain_model_dir

    report = explain_model_dir(args.model_dir, data=args.data, fmt=args.format,
                               out_dir=args.out, top_k=args.top_k, measure=args.measure)
    print(report)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from crossrank.train.throughput import run_training_benchmark

    print(run_training_benchmark(steps=args.steps, batch=args.batch_size, threads=args.threads))
    return 0
