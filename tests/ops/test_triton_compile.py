"""The kernels compile for an H100 (sm_90) with Triton's real compiler, GPU or not.

The interpreter tests cannot see GPU-only failures (typing, layouts, shared memory); this runs
``crossrank.ops.triton.compile_check --quick`` in a subprocess with the interpreter off.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

triton = pytest.importorskip("triton")

H100_MAX_SHARED = 227 * 1024  # bytes of shared memory one block may use on sm_90


@pytest.mark.slow
def test_kernels_compile_for_sm90() -> None:
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    if not os.path.exists(ptxas):
        pytest.skip("this Triton build has no bundled ptxas")
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "crossrank.ops.triton.compile_check", "--quick"],
        capture_output=True, text=True, env=env, check=False, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [line.split() for line in result.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) >= 12, result.stdout
    for row in rows:
        shared = int(row[-3] if row[-1].startswith("STACK") else row[-1])
        assert shared <= H100_MAX_SHARED, " ".join(row)
