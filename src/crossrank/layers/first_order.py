"""FirstOrder: the linear ("wide") term ``w_d . dense + sum_f w_f[id_f]`` added to a logit.

Logistic regression on one-hot categorical values is the strongest simple baseline on click
logs, and a deep or cross network reaches it only through its embeddings, where the same L2 and
learning rate must serve both the per-value bias and the value's crosses. A separate scalar per
categorical value (a one-dimensional embedding) plus a linear map of the dense features gives
the model that first-order part directly, as Wide & Deep's wide part and DeepFM's first-order
part do. It starts at zero, so it adds nothing until training finds a use for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from crossrank.layers.bag_embedding import BagFields
from crossrank.layers.embedding import FieldEmbedding
from crossrank.layers.validation import check_non_negative


class FirstOrder(nn.Module):
    """Per-value scalar weights for categorical fields plus a linear map of dense features.

    Args:
        num_dense: number of dense inputs (0 for none).
        vocab_sizes: ids per categorical field (empty for none).
        l2: L2 penalty on the looked-up scalar weights (applied in the backward pass, like
            :class:`~crossrank.layers.FieldEmbedding`'s) and on the dense weights.
        sparse: sparse gradients for the per-value weights.
        field_names: names of the categorical fields, for error messages.
        bags: multi-valued fields: a scalar per element, pooled like their embeddings.

    The weights start at zero and a logistic regression's weights are O(1), far for Adam's
    ~lr-sized steps: a model carrying this term names it ``first_order``, and
    ``build_optimizer(..., lr_scales={"first_order": 30})`` gives it its own learning rate.

    Shape:
        dense: (B, num_dense) float, categorical: (B, F) int64 or None -> (B,).

    Example:
        >>> layer = FirstOrder(2, [3, 5])
        >>> layer(torch.rand(4, 2), torch.tensor([[0, 1]] * 4)).shape  # zeros at the start
        torch.Size([4])
    """

    def __init__(self, num_dense: int, vocab_sizes: Sequence[int], *, l2: float = 0.0,
                 sparse: bool = False, field_names: Sequence[str] | None = None,
                 bags: BagFields | None = None) -> None:
        super().__init__()
        if num_dense < 0:
            raise ValueError(f"num_dense must be >= 0, got {num_dense!r}")
        self.l2 = check_non_negative("l2", l2)
        self.values: FieldEmbedding | None = None
        if len(vocab_sizes) or bags is not None:
            self.values = FieldEmbedding(vocab_sizes, 1, sparse=sparse, init_scale=0.0, l2=l2,
                                         field_names=field_names, bags=bags)
        self.dense_weight = nn.Parameter(torch.zeros(num_dense))

    def forward(self, dense: Tensor, categorical: Tensor | None) -> Tensor:
        # (B, D) @ (D, 1), a matrix product: bit-identical on any thread count, where a
        # matrix-vector product is not (crossrank.reproducible)
        out = (dense @ self.dense_weight.to(dense.dtype).unsqueeze(1)).squeeze(1)  # (B,)
        if self.values is not None and categorical is not None:
            # (B, F+M, 1) -> (B,)
            out = out + self.values(categorical).sum(dim=(1, 2)).to(out.dtype)
        return out

    def regularization(self) -> Tensor:
        """L2 on the dense weights (the per-value weights' L2 acts in the backward pass)."""
        return self.l2 * self.dense_weight.square().sum()
