"""DCN (v1) cross layer: ``x_{l+1} = x0 * (x_l . w_l) + b_l + x_l``, one vector per layer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.layers.cross_variants.base import CrossVariant, Weights
from crossrank.layers.init import init_kernel_
from crossrank.ops import reference


class VectorCross(CrossVariant):
    """The original DCN's cross layer; weight ``weight``, one N-vector ``w_l`` per layer.

    The bias sits outside the product with x0, and there is no activation or diagonal term.
    Its effective matrix is ``1 w^T``, since ``x0 * (w . x) = x0 * (1 w^T x)``.

    Args:
        in_features, num_layers: see ``CrossVariant``.

    Shape:
        weights: ``weight`` (L, N); x0, xl: (B, N) -> (B, N).

    Example:
        >>> part = VectorCross(2, 1)
        >>> weights = {"weight": torch.tensor([[1.0, 0.0]])}
        >>> x = torch.tensor([[1.0, 2.0]])
        >>> part.layer_forward(weights, 0, x, x, torch.tensor([0.5, 0.5])).tolist()
        [[2.5, 4.5]]
        >>> part.effective_weight(weights, 0).tolist()
        [[1.0, 0.0], [1.0, 0.0]]
    """

    name = "vector"
    weight_names = ("weight",)

    def __init__(self, in_features: int, num_layers: int) -> None:
        super().__init__(in_features, num_layers)

    def make_weights(self, kernel_init: str) -> dict[str, nn.Parameter]:
        n = self.in_features
        weight = nn.Parameter(torch.empty(self.num_layers, n))  # (L, N)
        init_kernel_(weight, kernel_init, fan_in=n, fan_out=1)
        return {"weight": weight}

    def layer_forward(self, weights: Weights, layer: int, x0: Tensor, xl: Tensor,
                      bias: Tensor | None) -> Tensor:
        return reference.vector_cross_layer(x0, xl, weights["weight"][layer], bias)

    def effective_weight(self, weights: Weights, layer: int) -> Tensor:
        w = weights["weight"][layer]  # (N,)
        ones = torch.ones(self.in_features, 1, dtype=w.dtype, device=w.device)  # (N, 1)
        return ones * w  # (N, 1) * (N,) -> (N, N), every row w
