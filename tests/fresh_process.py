"""Python code run in a fresh process with one environment variable set or removed: for what
is decided when a process starts (MKL's reproducibility mode, pyarrow's memory pool)."""

from __future__ import annotations

import os
import subprocess
import sys


def run_python(code: str, *, variable: str, value: str | None) -> list[str]:
    """The words ``code`` prints, run by this interpreter with ``variable`` set to ``value``
    (None: removed)."""
    env = {k: v for k, v in os.environ.items() if k != variable}
    if value is not None:
        env[variable] = value
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.split()
