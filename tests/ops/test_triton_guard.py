"""The Triton package must import and refuse cleanly where Triton or a device is missing.

These tests need neither Triton nor a GPU, so they never skip.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from crossrank.ops import dispatch, reference
from crossrank.ops.triton import _runtime, cross_stack_supported, dot_supported


def test_without_triton_unsupported_or_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runtime, "HAS_TRITON", False)
    x0, w = torch.randn(3, 4), torch.randn(2, 4, 4)
    assert not cross_stack_supported(x0, weight=w, u=None, v=None, activation=None, forced=False)
    with pytest.raises(RuntimeError, match="triton is not installed"):
        cross_stack_supported(x0, weight=w, u=None, v=None, activation=None, forced=True)
    dense, sparse = torch.randn(3, 4), torch.randn(3, 2, 4)
    assert not dot_supported(dense, sparse, forced=False)
    with pytest.raises(RuntimeError, match="triton is not installed"):
        dispatch.dot_interaction(dense, sparse, backend="triton")
    auto = dispatch.dot_interaction(dense, sparse, backend="auto")
    assert torch.equal(auto, reference.dot_interaction(dense, sparse))


def test_package_imports_when_triton_cannot_be_imported() -> None:
    # sys.modules[name] = None makes every `import triton` fail, as on a machine without it.
    code = textwrap.dedent("""
        import sys
        sys.modules["triton"] = None
        import torch
        from crossrank.ops import dispatch
        from crossrank.ops.triton import dot_supported
        dense, sparse = torch.randn(2, 3), torch.randn(2, 2, 3)
        assert not dot_supported(dense, sparse, forced=False)
        print(dispatch.dot_interaction(dense, sparse).shape)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "torch.Size([2, 6])" in result.stdout


def test_unfused_activation_is_unsupported_not_an_error() -> None:
    x0, w = torch.randn(3, 4), torch.randn(2, 4, 4)
    assert not cross_stack_supported(x0, weight=w, u=None, v=None, activation="tanh",
                                     forced=False)


def test_cpu_runs_kernels_only_when_forced_under_the_interpreter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if not _runtime.HAS_TRITON:
        pytest.skip("triton is not installed")
    dense, sparse = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 2, 3,
                                                                      dtype=torch.float64)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert dot_supported(dense, sparse, forced=True)  # float64 too, under the interpreter
    assert not dot_supported(dense, sparse, forced=False)  # auto keeps the CPU on the reference
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not dot_supported(dense, sparse, forced=False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        dot_supported(dense, sparse, forced=True)
