"""What every ranking model shares: input checks, the stacked input x0, parameter counts.

Deliberately small: models compute logits and nothing else (no optimizer, no fit, no device
policy); the trainer owns those.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.layers.cross import CrossNet
from crossrank.layers.embedding import FieldEmbedding
from crossrank.layers.first_order import FirstOrder
from crossrank.models.schema import FeatureSchema


class RankingModel(nn.Module):
    """Base of the models: ``forward(dense, sparse) -> logits (B,)``.

    Shape:
        dense: (B, n_dense) float; sparse: (B, n_sparse) int64 (None when n_sparse = 0)
        -> logits (B,).
    """

    schema: FeatureSchema
    task: str

    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def regularization(self) -> Tensor:
        """Sum of the cross networks' and first-order terms' L2 penalties (embedding L2 acts in
        the backward pass)."""
        total = torch.zeros((), device=self._device(), dtype=self._float_dtype())
        for module in self.modules():
            if isinstance(module, CrossNet | FirstOrder):
                total = total + module.regularization()
        return total

    def check_inputs(self, dense: Tensor | None, sparse: Tensor | None) -> tuple[Tensor, Tensor | None]:
        s = self.schema
        if dense is None:
            if s.num_dense:
                raise ValueError(f"dense must be a (B, {s.num_dense}) tensor, got None")
        elif not isinstance(dense, Tensor) or not torch.is_floating_point(dense):
            raise TypeError(f"dense must be a floating-point tensor, got "
                            f"{getattr(dense, 'dtype', type(dense).__name__)}")
        elif dense.dim() != 2 or dense.shape[1] != s.num_dense:
            raise ValueError(f"dense must have shape (B, {s.num_dense}), got {tuple(dense.shape)}")
        if s.num_sparse == 0:
            if sparse is not None and sparse.numel():
                raise ValueError(f"this model has no sparse fields, got sparse of shape "
                                 f"{tuple(sparse.shape)}")
            sparse = None
        elif sparse is None:
            raise ValueError(f"sparse must be a (B, {s.num_sparse}) int64 tensor, got None")
        if dense is None:
            assert sparse is not None  # schema has a field, checked in FeatureSchema
            dense = torch.zeros(sparse.shape[0], 0, device=sparse.device,
                                dtype=self._float_dtype())
        if sparse is not None and sparse.dim() == 2 and sparse.shape[0] != dense.shape[0]:
            raise ValueError(f"dense and sparse must share the batch size, got {dense.shape[0]} "
                             f"and {sparse.shape[0]}")
        return dense, sparse

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _float_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


def make_embedding(schema: FeatureSchema, *, l2: float, sparse_gradients: bool) -> FieldEmbedding | None:
    """The model's embedding layer (its SparseArch), or None for a dense-only schema."""
    if not schema.num_sparse:
        return None
    return FieldEmbedding(schema.vocab_sizes, schema.embedding_dim, l2=l2,
                          sparse=sparse_gradients, field_names=schema.sparse)


def stack_inputs(dense: Tensor, sparse: Tensor | None, embedding: FieldEmbedding | None) -> Tensor:
    """DCN's embedding-and-stacking layer: ``x0 = [dense, e_1, ..., e_F]``.

    Shape:
        dense: (B, n_dense); sparse: (B, F) -> (B, n_dense + F*D).
    """
    if embedding is None or sparse is None:
        return dense
    emb = embedding(sparse)  # (B, F, D)
    flat = emb.reshape(emb.shape[0], emb.shape[1] * emb.shape[2])  # (B, F*D); B may be 0
    return torch.cat([dense, flat], dim=1)  # (B, n_dense + F*D)
