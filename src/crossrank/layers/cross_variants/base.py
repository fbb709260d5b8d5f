"""The interface of a cross-layer variant: what ``CrossNet`` asks of full rank, low rank, ...

A variant names its weights, gives their shapes and first values (``make_weights``) and
computes with them: one layer through ``crossrank.ops.reference``, the layer's effective
N x N matrix, the kernels an L2 penalty covers and, for a mixture, the gate shares. It does not
hold the weights. The ``CrossNet`` that uses it registers them as its own parameters under the
variant's names, which are therefore the state_dict keys (``weight``, ``u``, ``v``, ``c``,
``gate``, as before the variants were split out, so old model files still load), and passes
them back on every call. A part that kept its own tensors would go stale the moment
``torch.func.functional_call`` or ``load_state_dict(assign=True)`` swaps the module's
parameters; a part that were a submodule would prefix every key.

The bias ``b_l`` (L, N) is the same for every variant; ``CrossNet`` owns it and passes the
layer's slice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from crossrank.layers.validation import check_non_negative, check_positive_int
from crossrank.ops.activations import get_activation

# A variant's weights by name, as the CrossNet holding them has them registered right now.
Weights = Mapping[str, Tensor]


class CrossVariant(ABC):
    """One kind of DCN cross layer, stacked over L layers (each layer its own weight slice).

    Args:
        in_features: N, the width of x0.
        num_layers: L.
        diag_scale: added to the cross matrix's diagonal (``W + diag_scale I``); >= 0.
        activation: the variant's activation by name (see ``crossrank.ops.activations``).

    Shape:
        x0, xl: (B, N); bias: (N,) or None; a layer returns (B, N).
    """

    name: ClassVar[str]  # in messages: "full rank", "low rank", "mixture", "vector"
    weight_names: ClassVar[tuple[str, ...]]  # the state_dict keys, in registration order
    # Whether ``crossrank.ops.dispatch.cross_stack`` has a fused kernel for this variant.
    fused: ClassVar[bool] = False

    def __init__(self, in_features: int, num_layers: int, *, diag_scale: float = 0.0,
                 activation: str | None = None) -> None:
        self.in_features = check_positive_int("in_features", in_features)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.diag_scale = check_non_negative("diag_scale", diag_scale)
        self.activation = activation
        self._act = get_activation(activation)

    @abstractmethod
    def make_weights(self, kernel_init: str) -> dict[str, nn.Parameter]:
        """Fresh, initialised weights keyed by ``weight_names``, in that order."""

    @abstractmethod
    def layer_forward(self, weights: Weights, layer: int, x0: Tensor, xl: Tensor,
                      bias: Tensor | None) -> Tensor:
        """Cross layer ``layer`` applied to ``(x0, x_l)`` with the reference op."""

    @abstractmethod
    def effective_weight(self, weights: Weights, layer: int) -> Tensor:
        """Layer ``layer``'s cross matrix plus ``diag_scale I``, as a new tensor (never a view
        of a weight): (N, N), or (K, N, N) for a mixture."""

    def stack_weights(self, weights: Weights) -> dict[str, Tensor]:
        """The weight arguments of ``crossrank.ops.dispatch.cross_stack`` (fused variants)."""
        raise TypeError(f"the {self.name} cross variant has no fused cross stack")

    def kernels(self, weights: Weights) -> list[Tensor]:
        """The weights an L2 kernel penalty covers: all of them (the bias is CrossNet's)."""
        return [weights[name] for name in self.weight_names]

    def gate_shares(self, weights: Weights, x0: Tensor, bias: Tensor | None) -> Tensor:
        """Average gate share of each expert per layer: a single expert has all of it.

        Shape:
            x0: (B, N); bias: (L, N) or None; returns (L, K), rows summing to 1.
        """
        return torch.ones(self.num_layers, 1, dtype=x0.dtype, device=x0.device)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"

    def _eye(self, like: Tensor) -> Tensor:
        """``diag_scale I`` (N, N) in ``like``'s dtype and device."""
        n = self.in_features
        return self.diag_scale * torch.eye(n, dtype=like.dtype, device=like.device)
