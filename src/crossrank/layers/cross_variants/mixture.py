"""DCN-Mix: K low-rank experts per cross layer, mixed by a softmax gate over the layer's input."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.layers.cross_variants.base import CrossVariant, Weights
from crossrank.layers.init import init_kernel_
from crossrank.layers.validation import check_positive_int
from crossrank.ops import reference


class MixtureCross(CrossVariant):
    """A mixture of K low-rank experts; weights ``u``, ``v``, ``c`` and ``gate``.

    ``E_k = x0 * (U_k g(C_k g(V_k x_l)) + b + diag_scale x_l)``,
    ``x_{l+1} = sum_k softmax(G x_l)_k E_k + x_l``, g the experts' activation.
    Every layer has its own gate ``G_l`` (TorchRec shares one gate across layers).
    With K = 1, g = None and ``C = I`` it is the low-rank layer.

    Args:
        in_features, num_layers, diag_scale: see ``CrossVariant``.
        rank: r, each expert's rank.
        num_experts: K (``CrossNet`` builds a mixture for K > 1 only; K = 1 is allowed here).
        activation: the experts' g, applied after ``V_k`` and after ``C_k``.

    Shape:
        weights: ``u`` (L, K, N, r), ``v`` (L, K, r, N), ``c`` (L, K, r, r), ``gate`` (L, K, N);
        x0, xl: (B, N) -> (B, N).

    Example:
        >>> part = MixtureCross(4, 2, rank=2, num_experts=3, activation="tanh")
        >>> weights = part.make_weights("glorot_uniform")
        >>> part.layer_forward(weights, 1, torch.ones(5, 4), torch.ones(5, 4), None).shape
        torch.Size([5, 4])
        >>> part.effective_weight(weights, 0).shape  # one matrix per expert
        torch.Size([3, 4, 4])
        >>> shares = part.gate_shares(weights, torch.ones(5, 4), None)  # (L, K)
        >>> bool(torch.allclose(shares.sum(dim=1), torch.ones(2)))
        True
    """

    name = "mixture"
    weight_names = ("u", "v", "c", "gate")

    def __init__(self, in_features: int, num_layers: int, *, rank: int, num_experts: int,
                 diag_scale: float = 0.0, activation: str | None = None) -> None:
        super().__init__(in_features, num_layers, diag_scale=diag_scale, activation=activation)
        self.rank = check_positive_int("rank", rank)
        self.num_experts = check_positive_int("num_experts", num_experts)

    def make_weights(self, kernel_init: str) -> dict[str, nn.Parameter]:
        n, r, k, layers = self.in_features, self.rank, self.num_experts, self.num_layers
        u = nn.Parameter(torch.empty(layers, k, n, r))  # (L, K, N, r)
        v = nn.Parameter(torch.empty(layers, k, r, n))  # (L, K, r, N)
        c = nn.Parameter(torch.empty(layers, k, r, r))  # (L, K, r, r)
        gate = nn.Parameter(torch.empty(layers, k, n))  # (L, K, N)
        init_kernel_(u, kernel_init, fan_in=r, fan_out=n)
        init_kernel_(v, kernel_init, fan_in=n, fan_out=r)
        init_kernel_(c, kernel_init, fan_in=r, fan_out=r)
        init_kernel_(gate, kernel_init, fan_in=n, fan_out=k)
        return {"u": u, "v": v, "c": c, "gate": gate}

    def layer_forward(self, weights: Weights, layer: int, x0: Tensor, xl: Tensor,
                      bias: Tensor | None) -> Tensor:
        u, v, c, gate = (weights[name][layer] for name in self.weight_names)
        return reference.mixture_cross_layer(x0, xl, u, v, c, gate, bias,
                                             diag_scale=self.diag_scale, activation=self._act)

    def effective_weight(self, weights: Weights, layer: int) -> Tensor:
        """``U_k C_k V_k + diag_scale I`` per expert: exact when g is None, and each expert's
        linear part otherwise."""
        u, v, c = weights["u"][layer], weights["v"][layer], weights["c"][layer]
        w = u @ c @ v  # (K, N, r) @ (K, r, r) @ (K, r, N) -> (K, N, N)
        return w + self._eye(w)

    def gate_shares(self, weights: Weights, x0: Tensor, bias: Tensor | None) -> Tensor:
        """Average softmax share of each expert per layer on the rows of ``x0``.

        Shape:
            x0: (B, N); bias: (L, N) or None; returns (L, K), rows summing to 1.
        """
        shares = []
        x = x0
        for layer in range(self.num_layers):
            p = reference.mixture_gates(x, weights["gate"][layer])  # (B, K)
            shares.append(p.mean(dim=0))  # (K,)
            x = self.layer_forward(weights, layer, x0, x, None if bias is None else bias[layer])
        return torch.stack(shares)  # (L, K)
