"""FactorizationMachine: the second-order term ``sum_{i<j} <v_i[id_i], v_j[id_j]>`` of a logit.

A rating is mostly a user-by-item affinity, and matrix factorization's ``<p_user, q_item>``
with a strong L2 on each looked-up factor is the strongest simple model of it. A cross network
can represent that product too, but only through its shared embeddings, whose scale, learning
rate and penalty must also serve every other cross, and (stacked) through a dropout-regularized
deep network. A factorization machine's pairwise term with its *own* factors and its *own*
per-occurrence L2 gives the model that affinity directly, added to the logit (DeepFM's FM part,
here with separate factors). It starts near zero, so it adds little until training finds a
use for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from crossrank.layers.bag_embedding import BagFields
from crossrank.layers.embedding import FieldEmbedding


class FactorizationMachine(nn.Module):
    """Sum over field pairs of the dot product of their factor vectors.

    Args:
        vocab_sizes: ids per categorical field (at least two fields, or there is no pair).
        dim: K, the length of each factor vector.
        l2: L2 penalty on the looked-up factors (per occurrence, applied in the backward pass
            like :class:`~crossrank.layers.FieldEmbedding`'s): matrix factorization's
            regularizer, the one that matters most here.
        sparse: sparse gradients for the factor table.
        init_scale: factors start uniform in ``[-init_scale, init_scale]``; small, so the
            term starts near zero.
        field_names: names of the fields, for error messages.
        bags: multi-valued fields, each one more field of pooled factors.

    Shape:
        dense: ignored (any, or None); categorical: (B, F) int64 -> (B,). The signature is the
        one every additive logit term shares, ``term(dense, categorical)``.

    Uses ``sum_{i<j} <v_i, v_j> = (|sum_i v_i|^2 - sum_i |v_i|^2) / 2``: O(F K), not O(F^2 K).

    Example:
        >>> import torch
        >>> fm = FactorizationMachine([3, 5], 4)
        >>> fm(None, torch.tensor([[2, 4], [0, 0]])).shape
        torch.Size([2])
    """

    def __init__(self, vocab_sizes: Sequence[int], dim: int, *, l2: float = 0.0,
                 sparse: bool = False, init_scale: float = 0.01,
                 field_names: Sequence[str] | None = None, bags: BagFields | None = None) -> None:
        super().__init__()
        if len(vocab_sizes) + (len(bags.sizes) if bags is not None else 0) < 2:
            raise ValueError(f"a factorization machine needs at least 2 categorical fields, "
                             f"got {len(vocab_sizes)}")
        self.factors = FieldEmbedding(vocab_sizes, dim, sparse=sparse, init_scale=init_scale,
                                      l2=l2, field_names=field_names, bags=bags)

    def forward(self, dense: Tensor | None, categorical: Tensor | None) -> Tensor:
        if categorical is None:
            raise ValueError("categorical must be a (B, F) int64 tensor, got None")
        v = self.factors(categorical)  # (B, F, K)
        total = v.sum(dim=1)  # (B, K)
        return 0.5 * (total.square().sum(dim=1) - v.square().sum(dim=(1, 2)))  # (B,)
