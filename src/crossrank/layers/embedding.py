"""FieldEmbedding: one fused table for many categorical fields, with per-field offsets.

This is the model's only sparse part ("SparseArch"): anything with the same interface
(``forward(ids: (B, F) int) -> (B, F, D)``, ``vocab_sizes``, ``embedding_dim``) can replace it,
e.g. a TorchRec ``EmbeddingBagCollection`` wrapper for tables that outgrow one device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from crossrank.layers.validation import check_non_negative, check_positive_int


class _RowL2(torch.autograd.Function):
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


class FieldEmbedding(nn.Module):
    """Embeddings for F categorical fields in one table; field f's id i is row ``offset_f + i``.

    Args:
        vocab_sizes: number of ids per field; ids of field f must lie in ``[0, vocab_sizes[f])``.
        embedding_dim: D.
        sparse: produce sparse gradients (only the rows a batch touches are updated; use with
            ``torch.optim.SparseAdam`` or ``Adagrad``).
        init_scale: rows start uniform in ``[-init_scale, init_scale]``.
        l2: L2 penalty on the looked-up rows, applied in the backward pass.
        check_ids: raise on out-of-range ids (a silent wrap into another field's rows would
            corrupt training without a trace).
        field_names: names for error messages.

    Shape:
        ids: (B, F) int -> (B, F, D).

    Example:
        >>> emb = FieldEmbedding([3, 5], 4)
        >>> emb(torch.tensor([[2, 4]])).shape
        torch.Size([1, 2, 4])
    """

    offsets: Tensor  # (F,) first row of each field's block in the fused table
    sizes: Tensor  # (F,) vocabulary size of each field

    def __init__(
        self,
        vocab_sizes: Sequence[int],
        embedding_dim: int,
        *,
        sparse: bool = False,
        init_scale: float = 0.05,
        l2: float = 0.0,
        check_ids: bool = True,
        field_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        sizes = tuple(vocab_sizes)
        if not sizes:
            raise ValueError("vocab_sizes must name at least one field, got an empty sequence")
        for s in sizes:
            check_positive_int("vocab_sizes entry", s)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.l2 = check_non_negative("l2", l2)
        scale = check_non_negative("init_scale", init_scale)
        self.vocab_sizes = sizes
        self.check_ids = check_ids
        self.field_names = tuple(field_names) if field_names is not None else tuple(
            f"field {i}" for i in range(len(sizes)))
        if len(self.field_names) != len(sizes):
            raise ValueError(f"field_names has {len(self.field_names)} names for "
                             f"{len(sizes)} vocab_sizes")
        offsets = torch.tensor((0,) + sizes[:-1], dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)  # (F,)
        self.register_buffer("sizes", torch.tensor(sizes, dtype=torch.int64), persistent=False)
        self.table = nn.Embedding(sum(sizes), embedding_dim, sparse=sparse)
        nn.init.uniform_(self.table.weight, -scale, scale)

    @property
    def num_fields(self) -> int:
        return len(self.vocab_sizes)

    def forward(self, ids: Tensor) -> Tensor:
        if not isinstance(ids, Tensor):
            raise TypeError(f"sparse ids must be a torch.Tensor, got {type(ids).__name__}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"sparse ids must be int64 or int32, got dtype {ids.dtype}")
        if ids.dim() != 2 or ids.shape[1] != self.num_fields:
            raise ValueError(f"sparse ids must have shape (B, {self.num_fields}), "
                             f"got {tuple(ids.shape)}")
        # An exported graph cannot raise on data (crossrank.serving's encoder makes only
        # in-range ids); eager calls, training included, are always checked.
        if self.check_ids and not torch.compiler.is_exporting():
            self._check_range(ids)
        emb = self.table(ids + self.offsets)  # (B, F, D)
        if self.l2 and self.training and emb.requires_grad:
            emb = _RowL2.apply(emb, self.l2)
        return emb

    def _check_range(self, ids: Tensor) -> None:
        bad = (ids < 0) | (ids >= self.sizes)  # (B, F)
        if bool(bad.any()):
            row, field = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"sparse id {int(ids[row, field])} out of range [0, {self.vocab_sizes[field]}) "
                f"for {self.field_names[field]} (column {field}) at batch row {row}"
            )
