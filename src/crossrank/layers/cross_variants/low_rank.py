"""Low-rank cross layer: ``W_l = U_l V_l``, so a layer costs O(N r) instead of O(N^2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.layers.cross_variants.base import CrossVariant, Weights
from crossrank.layers.init import init_kernel_
from crossrank.layers.validation import check_positive_int
from crossrank.ops import reference


class LowRankCross(CrossVariant):
    """A cross layer whose matrix is a rank-r product; weights ``u`` and ``v``.

    ``x_{l+1} = x0 * (act(U_l (V_l x_l) + b_l) + diag_scale x_l) + x_l``: the full-rank layer
    with ``W_l = U_l V_l`` (keras-rs' ``projection_dim``).

    Args:
        in_features, num_layers, diag_scale, activation: see ``CrossVariant``.
        rank: r.

    Shape:
        weights: ``u`` (L, N, r), ``v`` (L, r, N); x0, xl: (B, N) -> (B, N).

    Example:
        >>> part = LowRankCross(2, 1, rank=1)
        >>> weights = {"u": torch.ones(1, 2, 1), "v": torch.ones(1, 1, 2)}
        >>> part.layer_forward(weights, 0, torch.ones(1, 2), torch.ones(1, 2), None).tolist()
        [[3.0, 3.0]]
        >>> part.effective_weight(weights, 0).tolist()  # U V
        [[1.0, 1.0], [1.0, 1.0]]
    """

    name = "low rank"
    weight_names = ("u", "v")
    fused = True

    def __init__(self, in_features: int, num_layers: int, *, rank: int, diag_scale: float = 0.0,
                 activation: str | None = None) -> None:
        super().__init__(in_features, num_layers, diag_scale=diag_scale, activation=activation)
        self.rank = check_positive_int("rank", rank)

    def make_weights(self, kernel_init: str) -> dict[str, nn.Parameter]:
        n, r, layers = self.in_features, self.rank, self.num_layers
        u = nn.Parameter(torch.empty(layers, n, r))  # (L, N, r)
        v = nn.Parameter(torch.empty(layers, r, n))  # (L, r, N)
        init_kernel_(u, kernel_init, fan_in=r, fan_out=n)
        init_kernel_(v, kernel_init, fan_in=n, fan_out=r)
        return {"u": u, "v": v}

    def layer_forward(self, weights: Weights, layer: int, x0: Tensor, xl: Tensor,
                      bias: Tensor | None) -> Tensor:
        return reference.low_rank_cross_layer(x0, xl, weights["u"][layer], weights["v"][layer],
                                              bias, diag_scale=self.diag_scale,
                                              activation=self._act)

    def effective_weight(self, weights: Weights, layer: int) -> Tensor:
        w = weights["u"][layer] @ weights["v"][layer]  # (N, r) @ (r, N)
        return w + self._eye(w)

    def stack_weights(self, weights: Weights) -> dict[str, Tensor]:
        return {"u": weights["u"], "v": weights["v"]}
