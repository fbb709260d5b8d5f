"""Math: pure-PyTorch reference ops (the spec) and, behind a guarded import, Triton kernels."""

from crossrank.ops.activations import ACTIVATIONS, get_activation
from crossrank.ops.dispatch import Backend, cross_stack, dot_interaction

__all__ = ["ACTIVATIONS", "Backend", "cross_stack", "dot_interaction", "get_activation"]
