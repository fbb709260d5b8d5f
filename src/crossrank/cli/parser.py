"""The argument parser of the ``crossrank`` command."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from crossrank.cli.commands import (
    DEFAULT_OUT,
    _cmd_bench,
    _cmd_demo,
    _cmd_evaluate,
    _cmd_explain,
    _cmd_export,
    _cmd_predict,
    _cmd_serve,
    _cmd_train,
    _cmd_tune,
)


def _data_option(key: str) -> tuple[str, tuple[str, ...] | None, object]:
    """Help, choices and default of a ``[data]`` option, from DataConfig (the one source)."""
    from crossrank.data.config import DataConfig
    from crossrank.options import describe_fields

    for name, _, help_text, default, choices in describe_fields(DataConfig):
        if name == key:
            return help_text, tuple(c for c in choices if c is not None) if choices else None, \
                default
    raise KeyError(key)  # a bug: DataConfig lost the field


def _add_format_arg(p: argparse.ArgumentParser) -> None:
    help_text, choices, _ = _data_option("format")
    p.add_argument("--format", choices=choices, default=None, help=help_text)


def _add_data_args(p: argparse.ArgumentParser, *, required: bool, rejects_default: str) -> None:
    p.add_argument("--data", required=required, metavar="PATH",
                   help="a file, a directory of shards or a glob (TSV/CSV/Parquet, optionally "
                        "compressed)")
    _add_format_arg(p)
    help_text, choices, default = _data_option("on_bad_rows")
    p.add_argument("--on-bad-rows", choices=choices, default=default,
                   help=f"{help_text} (default: {default})")
    p.add_argument("--rejects", metavar="PATH", default=None,
                   help=f"where skipped rows go (default: {rejects_default}; never the model "
                        "directory, which may be read-only)")


def _add_evaluate_args(p: argparse.ArgumentParser) -> None:
    """One flag per EvaluateConfig field (the one source of its help and default)."""
    from crossrank.cli.options import _metavar, _show
    from crossrank.options import describe_fields
    from crossrank.pipeline.evaluate_config import EvaluateConfig

    for name, tp, help_text, default, _ in describe_fields(EvaluateConfig):
        metavar = {"group_by": "COLUMN", "plots": "DIR"}.get(name, _metavar(tp))
        p.add_argument("--" + name.replace("_", "-"), dest="eval:" + name, default=default,
                       metavar=metavar, help=f"{help_text} (default: {_show(default)})")


def _resumable() -> str:
    """The options a resumed run may change (run_dir.RESUMABLE), in words."""
    from crossrank.pipeline.run_dir import RESUMABLE

    names = [key.split(".", 1)[1] for key in RESUMABLE]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _add_tune_parser(sub: Any) -> None:
    from crossrank.cli.options import add_config_flags
    from crossrank.tune.space import default_spaces_text

    tune = sub.add_parser(
        "tune", help="search model and training options with Optuna (reads only --data)",
        description=textwrap.fill("Search the model and training options with Optuna's TPE sampler "
                                  "(seeded by --seed, as every trial's training is). Each "
                    "trial trains on --data and is scored by its best epoch's validation "
                    "metric (training.monitor) on the last training.valid_fraction of --data's "
                    "rows, as crossrank train is (with --folds K, the mean over K disjoint "
                    "blocks of that size, that split first); trials worse than the median of earlier ones "
                    "at the same epoch are pruned. Only the training data is read: a test "
                    "file is never an input, so test metrics stay honest (evaluate "
                    "OUT/best.toml's model on it afterwards). Every trial starts from the "
                    "run configuration (--config, the flags, --set), with the searched options "
                    "drawn from the search space: the model family's defaults below, changed "
                    "by the config file's [tune.space] table. OUT gets study.db (Optuna's "
                    "SQLite storage), trials.csv, best.toml (crossrank train --config "
                    "OUT/best.toml reproduces the best trial's value), history.png and "
                    "importance.png. Running the same command again continues the study: "
                    "finished trials are kept, one that was interrupted is marked failed.", 90),
        epilog=default_spaces_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    study = tune.add_argument_group("study")
    study.add_argument("--config", metavar="FILE", default=None,
                       help="run configuration every trial starts from (as crossrank train "
                            "--config), with an optional [tune] table: default_space = false, "
                            "and [tune.space] entries such as \"training.lr\" = {low = 1e-4, "
                            "high = 1e-2, log = true} or \"model.deep_layers\" = [[64], "
                            "[128, 64]]")
    study.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override one option of the base run, repeatable")
    study.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                       help="a model option of the base run: the same as --set model.KEY=VALUE")
    study.add_argument("--trials", type=int, default=50,
                       help="finished (complete or pruned) trials the study ends with "
                            "(default: 50)")
    study.add_argument("--timeout", default=None, metavar="DURATION",
                       help="stop starting trials after this long, e.g. 30m, 1h30m, 90s")
    study.add_argument("--folds", default="1", metavar="K",  # checked by tune: one line
                       help="validation splits per trial (default: 1): fold 0 is crossrank "
                            "train's split (the last training.valid_fraction of --data), fold "
                            "k the k-th block of that size before it, each fold trained on "
                            "all other rows; a trial's value is the mean of its folds'. On "
                            "small data (thousands of rows) 5 keeps trials from fitting one "
                            "split's noise; each trial costs K trainings")
    study.add_argument("--refine", type=int, default=0, metavar="N",
                       help="after the search (--trials, --timeout), at most N more trials, "
                            "each changing one choice entry of the best trial (e.g. "
                            "model.sparse_gradients) to another of its choices, the rest as "
                            "it was; the best moves to any that validates better, and its "
                            "own such changes are tried next (default: 0, none)")
    study.add_argument("--out", default="runs/tune",
                       help="the study's directory (default: runs/tune); locked while tuning")
    study.add_argument("--overwrite", action="store_true",
                       help="start a new study where --out holds one (without it, a study "
                            "with another configuration or search space is refused)")
    study.add_argument("--jobs", type=int, default=1,
                       help="trials at once, as threads of this process (default: 1). On a "
                            "2-core machine keep 1: a trial already uses the cores it is "
                            "faster on (the thread count is measured while training), and "
                            "two trials side by side make each slower")
    add_config_flags(tune)
    tune.set_defaults(func=_cmd_tune)


_SERVE_HELP = "serve an ONNX export over HTTP (POST /v1/score)"
_SERVE_DESCRIPTION = ("Score rows over HTTP: POST /v1/score with {\"rows\": [{...}, ...]} or a "
                      "CSV body (Content-Type: text/csv); GET /healthz, /v1/metadata, /metrics. "
                      "Concurrent requests share model calls. SIGTERM finishes the requests "
                      "in flight, then exits.")


def _add_serve(serve: argparse.ArgumentParser) -> None:
    from crossrank.cli.options import add_option_flags
    from crossrank.serving.config import ServeConfig

    serve.add_argument("export_dir", help="directory written by crossrank export --format onnx")
    add_option_flags(serve, ServeConfig, title="server options")
    serve.set_defaults(func=_cmd_serve, command="serve")


def build_serve_parser() -> argparse.ArgumentParser:
    """``crossrank serve``'s parser alone: the full parser reads the model registry (for
    ``train``'s options), which imports torch, and a serving image has none."""
    serve = argparse.ArgumentParser(prog="crossrank serve", description=_SERVE_DESCRIPTION)
    _add_serve(serve)
    return serve


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

    from crossrank.cli.options import add_config_flags, model_options_epilog

    train = sub.add_parser(
        "train", help="train a model (no --data: on synthetic Criteo-like clicks)",
        description="Train on a click log; without --data, on a synthetic Criteo-shaped data "
                    "set with planted feature crosses. Options come from --config (TOML, or "
                    "JSON such as a model.json), then the flags typed, then --model-option and "
                    "--set; a later one wins. Every run writes its resolved configuration to "
                    "OUT/run.toml, which --config takes back.",
        epilog=model_options_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    run = train.add_argument_group("run")
    run.add_argument("--config", metavar="FILE", default=None,
                     help="run configuration: TOML with [data] [schema] [encoder] [model] "
                          "[training] tables, or JSON (a model.json's run_config)")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override one option, repeatable, e.g. training.lr=3e-4, "
                          "model.cross.rank=64, training.lr_scales.first_order=30")
    run.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                     help="a model option, repeatable: the same as --set model.KEY=VALUE")
    run.add_argument("--out", default=DEFAULT_OUT,
                     help=f"output directory (default: {DEFAULT_OUT}); locked while training, "
                          "so a second training into it stops at once")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the model already in --out (without it, train refuses a "
                          "directory that holds one)")
    run.add_argument("--resume", action="store_true",
                     help="continue the interrupted run in --out from its last checkpoint, "
                          "with its saved options (--out X --resume is enough); options typed "
                          f"must equal the saved ones but {_resumable()}")
    run.add_argument("--nproc", type=int, default=1,
                     help="data-parallel processes on this machine (runs torchrun for you; "
                          "same as torchrun --nproc_per_node=N -m crossrank train ...)")
    add_config_flags(train)
    train.set_defaults(func=_cmd_train)

    _add_tune_parser(sub)

    evaluate = sub.add_parser(
        "evaluate", help="metrics of a trained model on labelled data",
        description="Metrics over every row at once, in float64, weighted by the model's "
                    "weight column if it has one: logloss, auc, accuracy, positive_rate (the "
                    "weighted mean label), ne (normalized entropy: logloss / H(positive_rate), "
                    "H the binary entropy of the evaluated rows' own mean label, not the "
                    "training set's), calibration (sum of predictions / sum of labels); rmse "
                    "and mae for regression. Probabilities are first recalibrated "
                    "for the model's negative_sampling_rate, p / (p + (1 - p) / rate).")
    evaluate.add_argument("model_dir", help="directory written by crossrank train")
    _add_data_args(evaluate, required=True, rejects_default="rejects.jsonl in the current "
                                                            "directory")
    _add_evaluate_args(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)

    pred = sub.add_parser(
        "predict", help="score rows: one line per input row, in input order",
        description="Write one CSV line per input row, in input order, file after file: "
                    "[id,] score, status. A row that cannot be scored (--on-bad-rows skip) "
                    "keeps its line, with an empty score and its reject reason as status "
                    "(else ok); a text file cut short ends with one line, status "
                    "rest_of_file_unread, for its unreadable rest. The label is never read.")
    pred.add_argument("model_dir", help="directory written by crossrank train")
    _add_data_args(pred, required=True, rejects_default="rejects.jsonl beside --out")
    pred.add_argument("--out", default="scores.csv", help="output CSV (id column first if any)")
    pred.set_defaults(func=_cmd_predict)

    explain = sub.add_parser("explain", help="which feature crosses the model learned")
    explain.add_argument("model_dir", help="directory written by crossrank train")
    explain.add_argument("--data", default=None,
                         help="data for mixture gate shares (DCN-Mix only)")
    _add_format_arg(explain)
    explain.add_argument("--out", default=None, help="output directory (default: MODEL_DIR/explain)")
    explain.add_argument("--top-k", type=int, default=20, help="field pairs in the ranked table")
    explain.add_argument("--measure", choices=("frobenius", "rms"), default="frobenius",
                         help="block norm ||W[f,g]||_F (the DCN-V2 paper's), or rms: divided by "
                              "sqrt(block size), fair between 1-column dense and D-column fields")
    explain.set_defaults(func=_cmd_explain)

    export = sub.add_parser(
        "export", help="export a trained model to ONNX or torch.export, with its encoder",
        description="Write OUT: model.onnx (or model.pt2, a torch.export program), the "
                    "encoder and serving.json, a directory that scores rows on its own "
                    "(crossrank serve, crossrank.serving.Scorer). Inputs: the encoded dense "
                    "(float32) and ids (int64) tensors, dynamic batch; output: the score "
                    "after the task's link.")
    export.add_argument("model_dir", help="directory written by crossrank train")
    export.add_argument("--format", choices=("onnx", "pt2"), default="onnx",
                        help="onnx: model.onnx from torch.onnx.export(dynamo=True); pt2: a "
                             "torch.export ExportedProgram (default: onnx)")
    export.add_argument("--out", required=True, help="export directory (new or empty)")
    export.set_defaults(func=_cmd_export)

    _add_serve(sub.add_parser("serve", help=_SERVE_HELP, description=_SERVE_DESCRIPTION))

    bench = sub.add_parser("bench", help="CPU training speed of DLRM-DCN, measured now")
    bench.add_argument("--steps", type=int, default=30, help="timed steps")
    bench.add_argument("--batch-size", type=int, default=2048)
    bench.add_argument("--threads", type=int, default=2)
    bench.set_defaults(func=_cmd_bench)
    return parser
