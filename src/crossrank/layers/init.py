"""Initializers by name, applied per layer slice of a stacked weight.

``torch.nn.init.xavier_uniform_`` on a stacked ``(L, N, N)`` tensor would count the layer axis as
a receptive field and shrink every layer's scale; these work on each 2-D slice instead, with
keras' conventions (``glorot_uniform`` is keras' and keras-rs' default kernel initializer).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

KERNEL_INITS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros")
BIAS_INITS = ("zeros", "ones")


def init_kernel_(weight: Tensor, name: str, *, fan_in: int, fan_out: int) -> Tensor:
    """Fill ``weight`` (any shape whose slices are ``fan_out x fan_in`` maps) in place.

    Example:
        >>> w = init_kernel_(torch.empty(2, 4, 4), "glorot_uniform", fan_in=4, fan_out=4)
        >>> bool(w.abs().max() <= (6 / 8) ** 0.5)
        True
    """
    if name not in KERNEL_INITS:
        raise ValueError(f"kernel_init must be one of {KERNEL_INITS}, got {name!r}")
    with torch.no_grad():
        if name == "zeros":
            return weight.zero_()
        if name.startswith("glorot"):
            var = 2.0 / (fan_in + fan_out)
        else:
            var = 2.0 / fan_in
        if name.endswith("uniform"):
            bound = math.sqrt(3.0 * var)
            return weight.uniform_(-bound, bound)
        return weight.normal_(0.0, math.sqrt(var))


def init_bias_(bias: Tensor, name: str) -> Tensor:
    """Fill a bias in place with zeros or ones."""
    if name not in BIAS_INITS:
        raise ValueError(f"bias_init must be one of {BIAS_INITS}, got {name!r}")
    with torch.no_grad():
        return bias.fill_(0.0 if name == "zeros" else 1.0)
