"""MLP: the only multi-layer perceptron in the codebase."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from crossrank.layers.validation import (
    check_float_input,
    check_non_negative,
    check_positive_int,
    check_sizes,
)
from crossrank.ops.activations import ACTIVATIONS

_MODULES = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
            "silu": nn.SiLU}


class MLP(nn.Module):
    """Stack of ``Linear -> activation (-> dropout)`` layers.

    Args:
        in_features: input width.
        layer_sizes: output width of each layer; the last one is the MLP's width.
        activation: activation name between layers.
        activate_last: apply the activation (and dropout) after the last layer too
            (DLRM's bottom MLP and TorchRec's DenseArch do; a logit layer does not).
        dropout: dropout probability after each activation.

    Shape:
        (B, in_features) -> (B, layer_sizes[-1]); with no layers, the identity.

    Example:
        >>> import torch
        >>> MLP(8, [16, 4])(torch.randn(3, 8)).shape
        torch.Size([3, 4])
    """

    def __init__(
        self,
        in_features: int,
        layer_sizes: Sequence[int],
        *,
        activation: str = "relu",
        activate_last: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        sizes = check_sizes("layer_sizes", layer_sizes)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        p = check_non_negative("dropout", dropout)
        if p >= 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        modules: list[nn.Module] = []
        width = in_features
        for i, size in enumerate(sizes):
            modules.append(nn.Linear(width, size))
            if i < len(sizes) - 1 or activate_last:
                modules.append(_MODULES[activation]())
                if p:
                    modules.append(nn.Dropout(p))
            width = size
        self.layers = nn.Sequential(*modules)
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        check_float_input("x", x, last_dim=self.in_features)
        return self.layers(x)
