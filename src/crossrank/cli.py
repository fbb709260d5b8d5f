"""Command-line interface: thin; parses arguments, calls the library, prints.

Errors a user can cause (bad files, bad options) print one line and exit 2, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_demo(args: argparse.Namespace) -> int:
    from crossrank.demo import run_demo

    run_demo(seed=args.seed)
    return 0


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TypeError, FileNotFoundError, PermissionError) as err:
        print(f"crossrank {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"crossrank {args.command}: interrupted", file=sys.stderr)
        return 130
