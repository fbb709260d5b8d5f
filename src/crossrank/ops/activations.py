"""Activations by name, so configs stay plain strings and kernels can fuse them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "gelu": torch.nn.functional.gelu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "silu": torch.nn.functional.silu,
}


def get_activation(name: str | None, *, argument: str = "activation") -> Callable[[Tensor], Tensor] | None:
    """Look an activation up by name; ``None`` (or ``"linear"``) means the identity.

    Example:
        >>> get_activation("relu")(torch.tensor([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """
    if name is None or name == "linear":
        return None
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"{argument} must be None or one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]
