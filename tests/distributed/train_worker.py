"""One rank of ``crossrank train`` under DDP, launched by test_shard_encoding.py as torchrun
would launch it (RANK, WORLD_SIZE, ... in the environment).

Usage: python train_worker.py REPORT_DIR CLI_ARGS...; runs ``crossrank train CLI_ARGS...``,
writes REPORT_DIR/rank{r}.json (the exit code, the data files this rank parsed, in the
order it first opened them, and the process group's threads still alive once the CLI has
returned) and exits with the CLI's code.
"""

import json
import os
import sys
from pathlib import Path

from launch import group_threads

import crossrank.data.prepare as prepare
from crossrank.cli import main as cli_main


def main(report_dir: str, argv: list[str]) -> int:
    parsed: list[str] = []
    reader = prepare.iter_tables

    def recording(path, **kwargs):
        if Path(path).name not in parsed:
            parsed.append(Path(path).name)
        return reader(path, **kwargs)

    prepare.iter_tables = recording  # every file prepare_data parses goes through it
    code = cli_main(["train", *argv])
    report = {"code": code, "parsed": parsed, "group_threads": group_threads()}
    Path(report_dir, f"rank{os.environ['RANK']}.json").write_text(json.dumps(report))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
