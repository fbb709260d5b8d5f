"""RowL2: an L2 penalty on the embedding rows a batch looked up, applied in the backward pass.

Under data parallelism each rank's penalty is scaled by its share of the global batch's rows
(:func:`scaled_by`, set by the training step around the forward pass): DDP averages the W
ranks' gradients, so a rank with n_r of the b rows adds ``2 l2 e / n_r * (n_r W / b)`` per
occurrence and the average is one process's ``2 l2 e / b`` whatever the share sizes; a rank
whose share is empty (a stand-in row of weight 0) adds nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
from torch import Tensor

_SCALE: ContextVar[float] = ContextVar("row_l2_scale", default=1.0)


@contextlib.contextmanager
def scaled_by(factor: float) -> Iterator[None]:
    """Multiply the penalty of the forward passes run inside by ``factor`` (this rank's share
    weight ``n_r W / b``; 1 in one process).

    Example:
        >>> e = torch.ones(2, 1, requires_grad=True)
        >>> with scaled_by(0.5):
        ...     out = RowL2.apply(e, 1.0)
        >>> out.sum().backward(); e.grad.tolist()  # 1 + 0.5 * 2 * 1 * e / 2
        [[1.5], [1.5]]
    """
    token = _SCALE.set(float(factor))
    try:
        yield
    finally:
        _SCALE.reset(token)


class RowL2(torch.autograd.Function):
    """Identity whose backward adds ``2 * l2 * e / B``: an L2 penalty on the looked-up rows.

    Penalising only the rows a batch touches keeps the gradient sparse; a penalty on the whole
    table would turn every step into a dense update of every row.
    """

    @staticmethod
    def forward(ctx, emb: Tensor, l2: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(emb)
        ctx.l2 = l2 * _SCALE.get()  # read now: the backward runs after the context has ended
        return emb.view_as(emb)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (emb,) = ctx.saved_tensors
        return grad + (2.0 * ctx.l2 / max(emb.shape[0], 1)) * emb, None
