"""RowL2: an L2 penalty on the embedding rows a batch looked up, applied in the backward pass."""

from __future__ import annotations

import torch
from torch import Tensor


class RowL2(torch.autograd.Function):
    """Identity whose backward adds ``2 * l2 * e / B``: an L2 penalty on the looked-up rows.

    Penalising only the rows a batch touches keeps the gradient sparse; a penalty on the whole
    table would turn every step into a dense update of every row.
    """

    @staticmethod
    def forward(ctx, emb: Tensor, l2: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(emb)
        ctx.l2 = l2
        return emb.view_as(emb)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (emb,) = ctx.saved_tensors
        return grad + (2.0 * ctx.l2 / max(emb.shape[0], 1)) * emb, None
