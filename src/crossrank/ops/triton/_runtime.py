"""Host-side facts shared by the Triton launchers: is Triton there, where may kernels run.

Nothing here imports Triton at module import time except inside ``try``, so
``crossrank.ops.triton`` imports (and reports "unsupported") on machines without it.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

HAS_TRITON = importlib.util.find_spec("triton") is not None
NO_TRITON = "triton is not installed (pip install 'crossrank[triton]')"

# Test hook: when True the launchers allocate every output and scratch buffer filled with NaN,
# so an element a kernel forgets to write shows up as a NaN instead of stale memory.
POISON_OUTPUTS = os.environ.get("CROSSRANK_TRITON_POISON", "") == "1"

KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def device_reason(*tensors: Tensor, forced: bool) -> str | None:
    """Why these tensors cannot go to a Triton kernel (device or dtype), or None if they can.

    CPU tensors run under the interpreter only when Triton is forced (``backend="triton"``):
    ``backend="auto"`` keeps the CPU on the reference, as the dispatcher documents, so a test
    suite run with ``TRITON_INTERPRET=1`` does not push every CPU model through the (slow)
    interpreter.
    """
    if not HAS_TRITON:
        return NO_TRITON
    first = tensors[0]
    for t in tensors:
        if t.device != first.device:
            return f"tensors on different devices ({first.device} and {t.device})"
        if t.dtype != first.dtype:
            return f"mixed dtypes ({first.dtype} and {t.dtype})"
    if first.device.type == "cpu":
        if not interpreting():
            return "tensors are on the CPU and TRITON_INTERPRET is not '1'"
        if not forced:
            return "CPU tensors take the reference unless backend='triton' is forced"
    elif first.device.type != "cuda":
        return f"device {first.device} is neither CUDA nor the CPU interpreter"
    allowed = KERNEL_DTYPES + ((torch.float64,) if interpreting() else ())
    if first.dtype not in allowed:
        return f"dtype {first.dtype} is not one of {[str(d) for d in allowed]}"
    return None


def empty(shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``torch.empty``, or a NaN-filled buffer when ``POISON_OUTPUTS`` is set."""
    if POISON_OUTPUTS:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulator and gradient-carry dtype: float32, or float64 for float64 inputs."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision: TF32 for float32 exactly when torch's matmuls may use it."""
    if dtype == torch.float32 and not interpreting() and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def upcast_dot_operands(dtype: torch.dtype) -> bool:
    """The interpreter's ``tl.dot`` multiplies bfloat16 bit patterns as integers (Triton 3.9),
    so under the interpreter bf16 tiles are widened to float32 first; products of bf16 values
    are exact in float32, which is what the tensor cores compute too."""
    return interpreting() and dtype == torch.bfloat16
