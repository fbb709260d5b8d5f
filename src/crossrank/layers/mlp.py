"""MLP: the only multi-layer perceptron in the codebase."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
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


class RowSafeBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` that also trains on a batch of one row.

    The statistics of a single row are undefined (its variance is 0), so torch refuses such a
    batch in training mode, and a training set of ``k * batch_size + 1`` rows would crash on
    its last batch. Here a one-row training batch is normalized with the running statistics
    (exactly as in evaluation) and leaves them unchanged; the affine weights still learn.

    Shape:
        (B, C) -> (B, C), any B >= 1.

    Example:
        >>> import torch
        >>> bn = RowSafeBatchNorm(3).train()
        >>> bn(torch.randn(1, 3)).shape
        torch.Size([1, 3])
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1 and self.track_running_stats:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                training=False, eps=self.eps)
        return super().forward(x)


# Normalization between a hidden layer's Linear and its activation. Layer norm works per row;
# batch norm uses batch statistics in training (a one-row batch uses the running ones).
_NORMS: dict[str | None, type[nn.Module] | None] = {None: None, "layer": nn.LayerNorm,
                                                     "batch": RowSafeBatchNorm}


class MLP(nn.Module):
    """Stack of ``Linear -> activation (-> dropout)`` layers.

    Args:
        in_features: input width.
        layer_sizes: output width of each layer; the last one is the MLP's width.
        activation: activation name between layers.
        activate_last: apply the activation (and dropout) after the last layer too
            (DLRM's bottom MLP and TorchRec's DenseArch do; a logit layer does not).
        dropout: dropout probability after each activation.
        norm: None, "layer" or "batch": normalization before each activation. Batch norm
            (:class:`RowSafeBatchNorm`) lifts DCN-V2 on Criteo (README); under DDP its batch
            statistics are each rank's share of the global batch, as in plain DDP (so a DDP
            run matches a one-process run only without it).

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
        norm: str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        sizes = check_sizes("layer_sizes", layer_sizes)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {sorted(_NORMS, key=str)}, got {norm!r}")
        p = check_non_negative("dropout", dropout)
        if p >= 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        modules: list[nn.Module] = []
        width = in_features
        for i, size in enumerate(sizes):
            modules.append(nn.Linear(width, size))
            if i < len(sizes) - 1 or activate_last:
                norm_cls = _NORMS[norm]
                if norm_cls is not None:
                    modules.append(norm_cls(size))
                modules.append(_MODULES[activation]())
                if p:
                    modules.append(nn.Dropout(p))
            width = size
        self.layers = nn.Sequential(*modules)
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        check_float_input("x", x, last_dim=self.in_features)
        return self.layers(x)
