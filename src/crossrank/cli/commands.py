"""One function per command: each reads the parsed arguments, calls the library, prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
    """The run the arguments describe (:func:`config_layers_from_args`), checked."""
    from crossrank.pipeline.run_config import build_run_config

    return build_run_config(config_layers_from_args(args))


def config_layers_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The run the arguments describe, as plain data: with ``--resume``, the saved run's
    configuration (``OUT/model.json``'s ``run_config``) first, so that ``--resume --out X``
    alone continues run X as it was started; then the config file (less its ``[tune]``
    table, which is ``crossrank tune``'s), the flags typed, then ``--model-option`` and
    ``--set`` overrides, each layer over the one before. (Whether the result may resume run
    X is :func:`~crossrank.pipeline.train_run`'s to check.)"""
    from crossrank.cli.options import flags_given
    from crossrank.models.registry import AUTO_MODEL
    from crossrank.pipeline.config_file import apply_overrides, read_config_file
    from crossrank.pipeline.run_config import merge_tables
    from crossrank.pipeline.run_dir import saved_run_config

    from_file = read_config_file(args.config) if args.config else {}
    from_file.pop("tune", None)
    given = merge_tables(from_file, flags_given(args))
    base = (saved_run_config(args.out) or {}) if getattr(args, "resume", False) else {}
    saved_model = base.get("model") or {}
    name = _model_name(given, args)
    if base and name == AUTO_MODEL and "name" in (given.get("model") or {}):
        # the family the saved run's auto model became is the saved one
        given = {**given, "model": {k: v for k, v in given["model"].items() if k != "name"}}
    elif base and name not in (None, saved_model.get("name")):
        # another family's options do not apply; resuming will name the change
        base = {**base, "model": {"embedding_dim": saved_model.get("embedding_dim", 16)}}
    layered = merge_tables(base, given)
    layered = apply_overrides(layered, args.model_option, flag="--model-option",
                              prefix="model.")
    return apply_overrides(layered, args.set, flag="--set")


def _model_name(given: dict, args: argparse.Namespace) -> str | None:
    """The model family the config file, the flags or the overrides name (None: none)."""
    name = (given.get("model") or {}).get("name")
    for pair in [f"model.{p}" for p in args.model_option] + list(args.set):
        key, _, value = pair.partition("=")
        if key.strip() == "model.name":
            name = value.strip()
    return name


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
        if args.resume and world.is_main:
            print(f"resuming the run in {args.out} with its saved options "
                  f"({args.out}/model.json) and the options typed")
        result = train_run(run, args.out, resume=args.resume, overwrite=args.overwrite)
    finally:
        cleanup()
    if not world.is_main:
        return 0
    print(f"best epoch {result.best_epoch}: "
          + ", ".join(f"valid {k} {v:.5f}" for k, v in result.best_metrics.items() if k != "rows"))
    if result.refit:
        print(f"refit: the saved model was then trained on every training row (the validation "
              f"rows too) for {result.best_epoch} epoch(s); the values above are the first "
              "pass's, the saved model has no held-out validation metric")
    print(f"model written to {args.out} (its configuration: {args.out}/run.toml)")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from crossrank.errors import ConfigError
    from crossrank.pipeline.config_file import read_config_file
    from crossrank.tune import parse_duration, tune

    base = config_layers_from_args(args)
    tune_table = (read_config_file(args.config) if args.config else {}).get("tune")
    if tune_table is not None and not isinstance(tune_table, dict):
        raise ConfigError(f"{args.config}: 'tune' must be a table ([tune]), got {tune_table!r}")
    result = tune(base, tune_table, args.out, trials=args.trials,
                  timeout=parse_duration(args.timeout), jobs=args.jobs, folds=_integer(args.folds),
                  refine_trials=args.refine, overwrite=args.overwrite)
    if result.best_number is None:
        print(f"no trial completed ({result.finished} finished); see {args.out}/trials.csv")
        return 1
    folds = (f" (mean of {len(result.best_folds)} folds; fold 0, which train validates on: "
             f"{result.best_folds[0]:.5f})" if len(result.best_folds) > 1 else "")
    print(f"best trial #{result.best_number} of {result.finished}: valid {result.monitor} "
          f"{result.best_value:.5f}{folds}; train it with: crossrank train --config {args.out}/best.toml")
    print("wrote " + ", ".join(str(f) for f in result.files))
    return 0


def _integer(text: str) -> int:
    """``--folds``' integer (its range is checked by tune), or one line saying it is not."""
    try:
        return int(text)
    except ValueError:
        from crossrank.errors import ConfigError

        raise ConfigError(f"--folds must be a positive integer, got {text!r}") from None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from crossrank.options import describe_fields, from_dict
    from crossrank.pipeline import evaluate_on_data
    from crossrank.pipeline.config_file import parse_value
    from crossrank.pipeline.evaluate_config import EvaluateConfig

    types = {name: tp for name, tp, *_ in describe_fields(EvaluateConfig)}
    given = {k[5:]: v if not isinstance(v, str) else parse_value(v, types[k[5:]])
             for k, v in vars(args).items() if k.startswith("eval:")}
    options = from_dict(EvaluateConfig, given, where="")
    metrics = evaluate_on_data(args.model_dir, data=args.data, fmt=args.format,
                               on_bad_rows=args.on_bad_rows, rejects_path=args.rejects,
                               options=options)
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
    import os

    from crossrank.pipeline import explain_model_dir

    if args.out is None and os.path.isdir(args.model_dir) and not os.access(args.model_dir,
                                                                             os.W_OK):
        raise PermissionError(f"cannot write the explanation into {args.model_dir}/explain "
                              "(the model directory is not writable); give --out DIR")

    report = explain_model_dir(args.model_dir, data=args.data, fmt=args.format,
                               out_dir=args.out, top_k=args.top_k, measure=args.measure)
    print(report)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from crossrank.pipeline import export_model_dir

    manifest = export_model_dir(args.model_dir, out=args.out, fmt=args.format)
    print(f"exported {args.model_dir} to {args.out}/{manifest.model_file} with its encoder and "
          f"serving.json ({manifest.exporter['exporter']})")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from crossrank.cli.options import options_given
    from crossrank.serving.config import ServeConfig
    from crossrank.serving.server import serve

    return serve(args.export_dir, options_given(args, ServeConfig))


def _cmd_bench(args: argparse.Namespace) -> int:
    from crossrank.train.throughput import run_training_benchmark

    print(run_training_benchmark(steps=args.steps, batch=args.batch_size, threads=args.threads))
    return 0
