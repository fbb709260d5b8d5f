"""CrossNet: a stack of DCN cross layers, of one variant chosen at construction.

One layer computes ``x_{l+1} = x0 * (act(W_l x_l + b_l) + diag_scale * x_l) + x_l`` on
``(B, N)`` tensors as matrix products. The variants live in ``crossrank.layers.cross_variants``:

* ``kind="matrix", rank=None``: ``FullRankCross``, DCN-V2's full-rank ``W_l`` (N x N).
* ``kind="matrix", rank=r``: ``LowRankCross``, ``W_l = U_l V_l`` (U: N x r, V: r x N).
* ``kind="matrix", rank=r, num_experts=K>1``: ``MixtureCross`` (DCN-Mix), K low-rank experts
  ``x0 * (U_k g(C_k g(V_k x_l)) + b)`` mixed by a softmax gate over ``x_l``.
* ``kind="vector"``: ``VectorCross``, DCN (v1), ``x_{l+1} = x0 * (x_l . w_l) + b_l + x_l``.

The variant computes; CrossNet holds the weights, registered under the variant's names, so the
state_dict keys are ``weight``, ``u``, ``v``, ``c``, ``gate`` and ``bias_param`` whatever the
variant (see ``cross_variants.base``). Weights are stacked over layers (``weight`` is
(L, N, N)), but every layer has its own slice: no weight is shared between layers, including
the mixture's gate (TorchRec shares one gate across all layers; here each layer gates its own
input).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from crossrank.layers.cross_variants import (
    CrossVariant,
    FullRankCross,
    LowRankCross,
    MixtureCross,
    VectorCross,
)
from crossrank.layers.init import BIAS_INITS, KERNEL_INITS, init_bias_
from crossrank.layers.validation import (
    check_choice,
    check_float_input,
    check_non_negative,
    check_positive_int,
)
from crossrank.ops.dispatch import BACKENDS, Backend, cross_backend, cross_stack

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
        backend: how ``forward`` runs the stack. "reference": the reference ops. "triton": the
            fused Triton kernel, for full and low rank with activation None, "linear" or "relu"
            only; any other variant or activation is a ValueError here, and a device, dtype or
            size the kernel cannot take a RuntimeError at the call, never a fallback. "auto":
            the fused kernel where ``backend="triton"`` would run on CUDA tensors, the reference
            otherwise. ``forward_backend`` is the choice made here. ``layer_forward`` and
            ``gate_shares`` always run the reference (one layer from any ``x_l``; the kernel
            runs whole stacks from x0).

    Shape:
        x0: (B, N) -> (B, N).

    Example:
        >>> net = CrossNet(6, 2, rank=3)
        >>> net(torch.randn(4, 6)).shape
        torch.Size([4, 6])
        >>> net.effective_weight(0).shape
        torch.Size([6, 6])
        >>> sorted(net.state_dict())
        ['bias_param', 'u', 'v']
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
        self.variant = _make_variant(n, layers, rank=rank, num_experts=k,
                                     diag_scale=self.diag_scale, activation=activation, kind=kind)
        self.in_features, self.num_layers, self.rank, self.num_experts = n, layers, rank, k
        self.kind, self.activation, self.use_bias, self.backend = kind, activation, use_bias, backend
        self.forward_backend: Backend = cross_backend(
            backend, variant=self.variant.name, has_kernel=self.variant.fused,
            activation=activation)
        for name, weight in self.variant.make_weights(kernel_init).items():
            self.register_parameter(name, weight)
        if use_bias:
            self.bias_param = nn.Parameter(init_bias_(torch.empty(layers, n), bias_init))  # (L, N)
        else:
            self.register_parameter("bias_param", None)

    @property
    def is_mixture(self) -> bool:
        return self.num_experts > 1

    def layer_forward(self, layer: int, x0: Tensor, xl: Tensor) -> Tensor:
        """Apply cross layer ``layer`` to ``(x0, x_l)``; both (B, N), returns (B, N).

        Always the reference op, whatever ``backend``: the fused kernel runs whole stacks.
        """
        self._check_layer(layer)
        return self.variant.layer_forward(self._weights(), layer, x0, xl, self._bias(layer))

    def forward(self, x0: Tensor) -> Tensor:
        check_float_input("x0", x0, ndim=2, last_dim=self.in_features)
        weights = self._weights()
        if self.forward_backend != "reference":
            # One dispatch for the whole stack, so the fused path can run all L layers in one
            # kernel per direction (each program carries its rows through every layer, x_l
            # round-tripping through L2) rather than one launch per layer.
            return cross_stack(x0, **self.variant.stack_weights(weights), bias=self.bias_param,
                               diag_scale=self.diag_scale, activation=self.activation,
                               backend=self.forward_backend)
        x = x0
        for layer in range(self.num_layers):
            x = self.variant.layer_forward(weights, layer, x0, x, self._bias(layer))
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
            return self.variant.effective_weight(self._weights(), layer)

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
        with torch.no_grad():
            return self.variant.gate_shares(self._weights(), x0, self.bias_param)

    def kernels(self) -> Iterator[Tensor]:
        """The kernel parameters (everything but biases)."""
        yield from self.variant.kernels(self._weights())

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
                f"use_bias={self.use_bias}, activation={self.activation}, "
                f"backend={self.backend}")

    def _weights(self) -> dict[str, Tensor]:
        # Looked up on every call: torch.func.functional_call and load_state_dict(assign=True)
        # replace registered parameters, so a reference kept from __init__ could be stale.
        return {name: getattr(self, name) for name in self.variant.weight_names}

    def _bias(self, layer: int) -> Tensor | None:
        return None if self.bias_param is None else self.bias_param[layer]

    def _check_layer(self, layer: int) -> None:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be an int in [0, {self.num_layers}), got {layer!r}")

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _device(self) -> torch.device:
        return next(self.parameters()).device


def _make_variant(n: int, layers: int, *, rank: int | None, num_experts: int, diag_scale: float,
                  activation: str | None, kind: str) -> CrossVariant:
    """The variant CrossNet's arguments describe; ValueError for combinations that name none."""
    if rank is not None:
        check_positive_int("rank", rank)
    if kind == "vector":
        if rank is not None or num_experts > 1 or diag_scale or activation:
            raise ValueError(
                "kind='vector' (DCN v1) takes no rank, num_experts, diag_scale or activation; "
                f"got rank={rank!r}, num_experts={num_experts}, diag_scale={diag_scale!r}, "
                f"activation={activation!r}"
            )
        return VectorCross(n, layers)
    if rank is None:
        if num_experts > 1:
            raise ValueError(f"num_experts={num_experts} (DCN-Mix) needs a low rank; got rank=None")
        return FullRankCross(n, layers, diag_scale=diag_scale, activation=activation)
    if num_experts == 1:
        return LowRankCross(n, layers, rank=rank, diag_scale=diag_scale, activation=activation)
    return MixtureCross(n, layers, rank=rank, num_experts=num_experts, diag_scale=diag_scale,
                        activation=activation)
