"""Command-line interface: thin; parses arguments, calls the library, prints.

Errors a user can cause (bad files, bad options, bad rows) print one line and exit 2, never a
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from crossrank.cli.parser import build_parser

__all__ = ["build_parser", "main"]


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
