"""Command-line interface: thin; parses arguments, calls the library, prints.

Errors a user can cause (bad files, bad options, bad rows: :class:`~crossrank.errors.CrossrankError`,
``ValueError``, ``OSError``) print one line and exit 2, never a traceback. Any other exception is
a bug in crossrank and is shown as one, with its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from crossrank.cli.parser import build_parser, build_serve_parser
from crossrank.data.memory_pool import prefer_jemalloc
from crossrank.errors import CrossrankError

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["serve"]:  # without the other commands' parsers, which import torch
        args = build_serve_parser().parse_args(given[1:])
    else:
        args = build_parser().parse_args(given)
    args.argv = given
    prefer_jemalloc()  # the command's own process: a faster pool for pyarrow's chunks
    try:
        return int(args.func(args))
    except (CrossrankError, ValueError, OSError) as err:
        # an error the user's input caused (a bad option, row, file): one line, exit 2
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"crossrank {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"crossrank {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        # anything else is a bug in crossrank, not the user's doing: say so, with the traceback
        print(f"crossrank {args.command}: internal error (a bug in crossrank; please report it "
              "with the traceback below)", file=sys.stderr)
        raise
