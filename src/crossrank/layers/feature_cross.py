"""FeatureCross: one cross layer with keras-rs' call shape ``(x0, x_i) -> x_{i+1}``."""

from __future__ import annotations

from torch import Tensor, nn

from crossrank.layers.cross import CrossNet
from crossrank.layers.validation import check_float_input


class FeatureCross(nn.Module):
    """One DCN-V2 cross layer for users who stack layers by hand, as keras-rs users do.

    ``x_{i+1} = x0 * (act(W x_i + b) + diag_scale * x_i) + x_i``, with ``W`` full rank, or
    ``U V`` when ``projection_dim`` is given. Arguments follow keras-rs ``FeatureCross``;
    the bias starts at zeros, which is what keras-rs' code does (its docs say "ones").

    Args:
        in_features: N (keras infers it at build time; PyTorch modules need it up front).
        projection_dim: r for a low-rank ``W = U V``; None for full rank.
        diag_scale, use_bias, pre_activation: as in ``CrossNet``.
        kernel_initializer, bias_initializer: initializer names.
        kernel_l2, bias_l2: L2 factors (keras-rs' kernel/bias regularizers).

    Shape:
        x0: (B, ..., N); x: same shape as x0 or None (then x = x0); returns x0's shape.

    Example:
        >>> import torch
        >>> x0 = torch.randn(2, 32)
        >>> cross1, cross2 = FeatureCross(32), FeatureCross(32, projection_dim=8)
        >>> x1 = cross1(x0, x0)
        >>> cross2(x0, x1).shape
        torch.Size([2, 32])
    """

    def __init__(
        self,
        in_features: int,
        *,
        projection_dim: int | None = None,
        diag_scale: float = 0.0,
        use_bias: bool = True,
        pre_activation: str | None = None,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        kernel_l2: float = 0.0,
        bias_l2: float = 0.0,
    ) -> None:
        super().__init__()
        self.cross = CrossNet(
            in_features, 1, rank=projection_dim, diag_scale=diag_scale, use_bias=use_bias,
            activation=pre_activation, kernel_init=kernel_initializer, bias_init=bias_initializer,
            kernel_l2=kernel_l2, bias_l2=bias_l2,
        )

    def forward(self, x0: Tensor, x: Tensor | None = None) -> Tensor:
        n = self.cross.in_features
        check_float_input("x0", x0, last_dim=n)
        if x is None:
            x = x0
        check_float_input("x", x, last_dim=n)
        if x.shape != x0.shape:
            raise ValueError(f"x must have x0's shape {tuple(x0.shape)}, got {tuple(x.shape)}")
        out = self.cross.layer_forward(0, x0.reshape(-1, n), x.reshape(-1, n))  # (B*..., N)
        return out.reshape(x0.shape)

    def effective_weight(self) -> Tensor:
        """The layer's N x N matrix (W or U V, plus diag_scale I)."""
        return self.cross.effective_weight(0)

    def regularization(self) -> Tensor:
        return self.cross.regularization()
