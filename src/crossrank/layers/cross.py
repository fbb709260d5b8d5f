"""CrossNet: a stack of DCN cross layers (full rank, low rank, vector, mixture of experts).

One layer computes ``x_{l+1} = x0 * (act(W_l x_l + b_l) + diag_scale * x_l) + x_l`` on
``(B, N)`` tensors as matrix products. Variants:

* ``kind="matrix", rank=None``: DCN-V2, full-rank ``W_l`` (N x N).
* ``kind="matrix", rank=r``: low rank ``W_l = U_l V_l`` (U: N x r, V: r x N).
* ``kind="matrix", rank=r, num_experts=K>1``: DCN-Mix, K low-rank experts
  ``x0 * (U_k g(C_k g(V_k x_l)) + b)`` mixed by a softmax gate over ``x_l``.
* ``kind="vector"``: DCN (v1), ``x_{l+1} = x0 * (x_l . w_l) + b_l + x_l``.

Weights are stacked over layers (``weight`` is (L, N, N)), but every layer has its own slice:
no weight is shared between layers, including the mixture's gate (TorchRec shares one gate
across all layers; here each layer gates its own input).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from crossrank.layers.init import BIAS_INITS, KERNEL_INITS, init_bias_, init_kernel_
from crossrank.layers.validation import (
    check_choice,
    check_float_input,
    check_non_negative,
    check_positive_int,
)
from crossrank.ops import reference
from crossrank.ops.activations import get_activation
from crossrank.ops.dispatch import BACKENDS, cross_stack

CROSS_KINDS = ("matrix", "vector")


class CrossNet(nn.Module):
    """A stack of ``num_layers`` cross layers over ``in_features`` = N inputs.

    Args:
        in_features: N, the width of x0.
        num_layers: L, number of cross layers (each with its own weights).
        rank: None for full-rank W; r for ``W = U V``.
        num_experts: K; K > 1 is DCN-Mix (needs ``rank``).
        diag_scale: added to W's diagonal (``W + diag_scale I``); >= 0.
        use_bias: learn ``b_l``.
        activation: pre-activation applied to ``W x + b`` before ``diag_scale * x`` is added
            (keras-rs ``FeatureCross``); for mixtures it is the experts' g. A name or None.
        kind: "matrix" (DCN-V2 family) or "vector" (DCN v1).
        kernel_init, bias_init: initializer names (see ``crossrank.layers.init``).
        kernel_l2, bias_l2: L2 penalty factors returned by ``regularization()``.
        backend: "auto" (fused Triton kernel on CUDA when supported), "reference" or "triton".

    Shape:
        x0: (B, N) -> (B, N).

    Example:
        >>> net = CrossNet(6, 2, rank=3)
        >>> net(torch.randn(4, 6)).shape
        torch.Size([4, 6])
        >>> net.effective_weight(0).shape
        torch.Size([6, 6])
    """

    def __init__(
        self,
        in_features: int,
        num_layers: int,
        *,
        rank: int | None = None,
        num_experts: int = 1,
        diag_scale: float = 0.0,
        use_bias: bool = True,
        activation: str | None = None,
        kind: str = "matrix",
        kernel_init: str = "glorot_uniform",
        bias_init: str = "zeros",
        kernel_l2: float = 0.0,
        bias_l2: float = 0.0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        n = check_positive_int("in_features", in_features)
        layers = check_positive_int("num_layers", num_layers)
        k = check_positive_int("num_experts", num_experts)
        check_choice("kind", kind, CROSS_KINDS)
        check_choice("kernel_init", kernel_init, KERNEL_INITS)
        check_choice("bias_init", bias_init, BIAS_INITS)
        check_choice("backend", backend, BACKENDS)
        self.diag_scale = check_non_negative("diag_scale", diag_scale)
        self.kernel_l2 = check_non_negative("kernel_l2", kernel_l2)
        self.bias_l2 = check_non_negative("bias_l2", bias_l2)
        self._act = get_activation(activation)
        if rank is not None:
            check_positive_int("rank", rank)
        if kind == "vector" and (rank is not None or k > 1 or diag_scale or activation):
            raise ValueError(
                "kind='vector' (DCN v1) takes no rank, num_experts, diag_scale or activation; "
                f"got rank={rank!r}, num_experts={k}, diag_scale={diag_scale!r}, "
                f"activation={activation!r}"
            )
        if k > 1 and rank is None:
            raise ValueError(f"num_experts={k} (DCN-Mix) needs a low rank; got rank=None")
        self.in_features, self.num_layers, self.rank, self.num_experts = n, layers, rank, k
        self.kind, self.activation, self.use_bias, self.backend = kind, activation, use_bias, backend

        if kind == "vector":
            self.weight = nn.Parameter(torch.empty(layers, n))  # (L, N)
            init_kernel_(self.weight, kernel_init, fan_in=n, fan_out=1)
        elif rank is None:
            self.weight = nn.Parameter(torch.empty(layers, n, n))  # (L, N, N)
            init_kernel_(self.weight, kernel_init, fan_in=n, fan_out=n)
        elif k == 1:
            self.u = nn.Parameter(torch.empty(layers, n, rank))  # (L, N, r)
            self.v = nn.Parameter(torch.empty(layers, rank, n))  # (L, r, N)
            init_kernel_(self.u, kernel_init, fan_in=rank, fan_out=n)
            init_kernel_(self.v, kernel_init, fan_in=n, fan_out=rank)
        else:
            self.u = nn.Parameter(torch.empty(layers, k, n, rank))  # (L, K, N, r)
            self.v = nn.Parameter(torch.empty(layers, k, rank, n))  # (L, K, r, N)
            self.c = nn.Parameter(torch.empty(layers, k, rank, rank))  # (L, K, r, r)
            self.gate = nn.Parameter(torch.empty(layers, k, n))  # (L, K, N)
            init_kernel_(self.u, kernel_init, fan_in=rank, fan_out=n)
            init_kernel_(self.v, kernel_init, fan_in=n, fan_out=rank)
            init_kernel_(self.c, kernel_init, fan_in=rank, fan_out=rank)
            init_kernel_(self.gate, kernel_init, fan_in=n, fan_out=k)
        if use_bias:
            self.bias_param = nn.Parameter(init_bias_(torch.empty(layers, n), bias_init))  # (L, N)
        else:
            self.register_parameter("bias_param", None)

    @property
    def is_mixture(self) -> bool:
        return self.num_experts > 1

    def layer_forward(self, layer: int, x0: Tensor, xl: Tensor) -> Tensor:
        """Apply cross layer ``layer`` to ``(x0, x_l)``; both (B, N), returns (B, N)."""
        b = None if self.bias_param is None else self.bias_param[layer]
        if self.kind == "vector":
            return reference.vector_cross_layer(x0, xl, self.weight[layer], b)
        if self.rank is None:
            return reference.cross_layer(x0, xl, self.weight[layer], b,
                                         diag_scale=self.diag_scale, activation=self._act)
        if not self.is_mixture:
            return reference.low_rank_cross_layer(x0, xl, self.u[layer], self.v[layer], b,
                                                  diag_scale=self.diag_scale,
                                                  activation=self._act)
        return reference.mixture_cross_layer(
            x0, xl, self.u[layer], self.v[layer], self.c[layer], self.gate[layer], b,
            diag_scale=self.diag_scale, activation=self._act,
        )

    def forward(self, x0: Tensor) -> Tensor:
        check_float_input("x0", x0, ndim=2, last_dim=self.in_features)
        if self.kind == "matrix" and not self.is_mixture:
            # The whole stack goes through one dispatch so a fused kernel can keep it on chip.
            return cross_stack(
                x0,
                weight=self.weight if self.rank is None else None,
                u=self.u if self.rank is not None else None,
                v=self.v if self.rank is not None else None,
                bias=self.bias_param, diag_scale=self.diag_scale,
                activation=self.activation, backend=self.backend,  # type: ignore[arg-type]
            )
        x = x0
        for layer in range(self.num_layers):
            x = self.layer_forward(layer, x0, x)
        return x

    def effective_weight(self, layer: int) -> Tensor:
        """Layer ``layer``'s N x N cross matrix, ``W`` or ``U V``, plus ``diag_scale I``.

        For DCN v1 (``kind="vector"``) it is ``1 w^T`` (``x0 * (w . x) = x0 * (1 w^T x)``).
        For a mixture it is (K, N, N), ``U_k C_k V_k + diag_scale I`` per expert: exact when
        the experts' activation is None, and the linear part of each expert otherwise.
        Detached from autograd.

        Shape:
            returns (N, N), or (K, N, N) for a mixture.
        """
        self._check_layer(layer)
        with torch.no_grad():
            n = self.in_features
            eye = torch.eye(n, dtype=self._dtype(), device=self._device())
            if self.kind == "vector":
                return torch.ones(n, 1, dtype=eye.dtype, device=eye.device) * self.weight[layer]
            if self.rank is None:
                w = self.weight[layer].clone()
            elif not self.is_mixture:
                w = self.u[layer] @ self.v[layer]  # (N, r) @ (r, N)
            else:
                w = self.u[layer] @ self.c[layer] @ self.v[layer]  # (K, N, N)
            return w + self.diag_scale * eye

    def bias(self, layer: int) -> Tensor:
        """Layer ``layer``'s bias ``b_l`` (zeros when ``use_bias=False``); shape (N,)."""
        self._check_layer(layer)
        if self.bias_param is None:
            return torch.zeros(self.in_features, dtype=self._dtype(), device=self._device())
        return self.bias_param[layer].detach().clone()

    def gate_shares(self, x0: Tensor) -> Tensor:
        """Average softmax share of each expert per layer on the rows of ``x0``.

        Shape:
            x0: (B, N) -> (L, K); every row sums to 1. For K = 1 all ones.
        """
        check_float_input("x0", x0, ndim=2, last_dim=self.in_features)
        if not self.is_mixture:
            return torch.ones(self.num_layers, 1, dtype=x0.dtype, device=x0.device)
        shares = []
        with torch.no_grad():
            x = x0
            for layer in range(self.num_layers):
                shares.append(reference.mixture_gates(x, self.gate[layer]).mean(dim=0))  # (K,)
                x = self.layer_forward(layer, x0, x)
        return torch.stack(shares)  # (L, K)

    def kernels(self) -> Iterator[Tensor]:
        """The kernel parameters (everything but biases)."""
        for name, p in self.named_parameters():
            if name != "bias_param":
                yield p

    def regularization(self) -> Tensor:
        """``kernel_l2 * sum ||kernel||^2 + bias_l2 * sum ||b||^2`` (keras-rs' regularizers)."""
        total = torch.zeros((), dtype=self._dtype(), device=self._device())
        if self.kernel_l2:
            total = total + self.kernel_l2 * sum(p.pow(2).sum() for p in self.kernels())
        if self.bias_l2 and self.bias_param is not None:
            total = total + self.bias_l2 * self.bias_param.pow(2).sum()
        return total

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_layers={self.num_layers}, kind={self.kind}, "
                f"rank={self.rank}, num_experts={self.num_experts}, diag_scale={self.diag_scale}, "
                f"use_bias={self.use_bias}, activation={self.activation}")

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be an int in [0, {self.num_layers}), got {layer!r}")

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _device(self) -> torch.device:
        return next(self.parameters()).device
