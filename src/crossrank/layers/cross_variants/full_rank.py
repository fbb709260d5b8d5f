"""Full-rank cross layer (DCN-V2): ``x_{l+1} = x0 * (act(W_l x_l + b_l) + diag_scale x_l) + x_l``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.layers.cross_variants.base import CrossVariant, Weights
from crossrank.layers.init import init_kernel_
from crossrank.ops import reference


class FullRankCross(CrossVariant):
    """DCN-V2's cross layer with a full N x N matrix ``W_l`` per layer; weight ``weight``.

    Args:
        in_features, num_layers, diag_scale, activation: see ``CrossVariant``; the activation
            is keras-rs' pre-activation, applied to ``W x + b`` before ``diag_scale x`` is added.

    Shape:
        weights: ``weight`` (L, N, N), acting as ``W @ x``; x0, xl: (B, N) -> (B, N).

    Example:
        >>> part = FullRankCross(3, 2)
        >>> weights = {"weight": torch.eye(3).expand(2, 3, 3)}
        >>> part.layer_forward(weights, 1, torch.ones(1, 3), torch.ones(1, 3), None).tolist()
        [[2.0, 2.0, 2.0]]
        >>> part.make_weights("glorot_uniform")["weight"].shape
        torch.Size([2, 3, 3])
    """

    name = "full rank"
    weight_names = ("weight",)
    fused = True

    def make_weights(self, kernel_init: str) -> dict[str, nn.Parameter]:
        n, layers = self.in_features, self.num_layers
        weight = nn.Parameter(torch.empty(layers, n, n))  # (L, N, N)
        init_kernel_(weight, kernel_init, fan_in=n, fan_out=n)
        return {"weight": weight}

    def layer_forward(self, weights: Weights, layer: int, x0: Tensor, xl: Tensor,
                      bias: Tensor | None) -> Tensor:
        return reference.cross_layer(x0, xl, weights["weight"][layer], bias,
                                     diag_scale=self.diag_scale, activation=self._act)

    def effective_weight(self, weights: Weights, layer: int) -> Tensor:
        w = weights["weight"][layer]  # (N, N)
        return w + self._eye(w)

    def stack_weights(self, weights: Weights) -> dict[str, Tensor]:
        return {"weight": weights["weight"]}
