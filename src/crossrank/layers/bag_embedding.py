"""BagEmbedding: one pooled embedding per multi-valued field (genres, tags, recent items).

Field m's input is its ids padded to a fixed width W_m with -1 (``-1`` = no element), so the
whole model input stays one int tensor that export can carry; its length is the number of ids
that are not -1. With ``e_j`` the embedding of element j of the row (its own table per field)::

    sum:   p = sum_j e_j
    mean:  p = sum_j e_j / length          (0 for an empty row)
    max:   p = max_j e_j, elementwise      (0 for an empty row)

Duplicates count each time they occur. Training uses ``torch.nn.functional.embedding_bag``
on the ids that are not padding, with each row's offset; with an L2 penalty (on the
looked-up rows, per occurrence, as :class:`~crossrank.layers.FieldEmbedding`'s) or while
exporting, the same pooling runs as a gather, a mask and a reduction, which
``torch.onnx``/``torch.export`` trace.
Each table has one extra row, the padding row, kept at zero and never updated; with sparse
gradients only the rows a batch looked up are touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crossrank.layers.row_l2 import RowL2
from crossrank.layers.validation import check_non_negative, check_positive_int

POOLINGS: tuple[str, ...] = ("sum", "mean", "max")


@dataclass(frozen=True)
class BagFields:
    """The multi-valued fields of a model's input: ids per field (``sizes``), padded width per
    field (``widths``), pooling per field and names.

    Example:
        >>> BagFields(sizes=(10,), widths=(4,), pooling=("mean",), names=("genres",)).width
        4
    """

    sizes: tuple[int, ...]
    widths: tuple[int, ...]
    pooling: tuple[str, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        for key in ("sizes", "widths", "pooling", "names"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        m = len(self.sizes)
        if not m or any(len(getattr(self, k)) != m for k in ("widths", "pooling", "names")):
            raise ValueError(f"sizes, widths, pooling and names must name the same (at least "
                             f"one) fields, got {self}")
        for size, width in zip(self.sizes, self.widths, strict=True):
            check_positive_int("multi-valued vocab size", size)
            check_positive_int("multi-valued width", width)
        bad = [p for p in self.pooling if p not in POOLINGS]
        if bad:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {bad}")

    @property
    def width(self) -> int:
        """Input columns of all the fields together."""
        return sum(self.widths)


class BagEmbedding(nn.Module):
    """Pooled embeddings of M multi-valued fields, each field its own table.

    Args:
        fields: the fields (:class:`BagFields`).
        embedding_dim: D.
        sparse: sparse gradients (only the looked-up rows are updated); a max-pooled field's
            table keeps dense gradients (torch's ``embedding_bag`` has no sparse max).
        init_scale: rows start uniform in ``[-init_scale, init_scale]`` (the padding row 0).
        l2: L2 penalty on the looked-up rows, per occurrence, in the backward pass.
        check_ids: raise on ids outside ``[-1, size)``.

    Shape:
        ids: (B, sum of W_m) int, -1 padding -> (B, M, D).

    Example:
        >>> bags = BagEmbedding(BagFields((5,), (3,), ("sum",), ("g",)), 2)
        >>> bags(torch.tensor([[1, 4, -1], [-1, -1, -1]])).shape
        torch.Size([2, 1, 2])
    """

    def __init__(self, fields: BagFields, embedding_dim: int, *, sparse: bool = False,
                 init_scale: float = 0.05, l2: float = 0.0, check_ids: bool = True) -> None:
        super().__init__()
        if not isinstance(fields, BagFields):
            raise TypeError(f"fields must be BagFields, got {type(fields).__name__}")
        self.fields = fields
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.l2 = check_non_negative("l2", l2)
        scale = check_non_negative("init_scale", init_scale)
        self.check_ids = check_ids
        self.tables = nn.ModuleList()
        for size, pooling in zip(fields.sizes, fields.pooling, strict=True):
            table = nn.Embedding(size + 1, embedding_dim, padding_idx=size,
                                 sparse=sparse and pooling != "max")
            with torch.no_grad():
                nn.init.uniform_(table.weight, -scale, scale)
                table.weight[size].zero_()  # the padding row
            self.tables.append(table)

    @property
    def num_fields(self) -> int:
        return len(self.fields.sizes)

    def forward(self, ids: Tensor) -> Tensor:
        if ids.dim() != 2 or ids.shape[1] != self.fields.width:
            raise ValueError(f"multi-valued ids must have shape (B, {self.fields.width}), got "
                             f"{tuple(ids.shape)}")
        exporting = torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()
        reference = exporting or bool(self.l2 and self.training and torch.is_grad_enabled())
        pooled = []
        start = 0
        for m, module in enumerate(self.tables):
            table = cast(nn.Embedding, module)
            size, width = self.fields.sizes[m], self.fields.widths[m]
            part = ids[:, start:start + width]  # (B, W_m)
            start += width
            if self.check_ids and not exporting:
                self._check_range(part, m)
            mode = self.fields.pooling[m]
            if reference:
                rows = torch.where(part < 0, torch.full_like(part, size), part)  # -1 -> padding
                pooled.append(self._reference(rows, table, mode, size))  # (B, D)
            else:
                pooled.append(self._bag(part, table, mode))  # (B, D)
        return torch.stack(pooled, dim=1)  # (B, M, D)

    @staticmethod
    def _bag(part: Tensor, table: nn.Embedding, mode: str) -> Tensor:
        """``embedding_bag`` over the ids that are not padding, as one flat list with each
        row's offset: the padded (B, W) matrix with ``padding_idx`` gave the same sums but
        took 1.8x the time forward and backward (B 2048, W 40, half padding, sparse gradient:
        11.4-12.9 against 6.2-6.9 ms, 2 threads, 2026-12-02), its backward filtering the
        padding out again."""
        present = part >= 0  # (B, W)
        counts = present.sum(dim=1)  # (B,)
        offsets = torch.zeros_like(counts)
        offsets[1:] = counts.cumsum(0)[:-1]  # (B,) where each row's ids start
        return F.embedding_bag(part[present], table.weight, offsets, mode=mode,
                               sparse=table.sparse)  # (B, D); an empty row gives 0

    def _reference(self, rows: Tensor, table: nn.Embedding, mode: str, size: int) -> Tensor:
        emb = table(rows)  # (B, W, D)
        if self.l2 and self.training and emb.requires_grad:
            emb = RowL2.apply(emb, self.l2)
        present = rows != size  # (B, W)
        count = present.sum(dim=1, keepdim=True)  # (B, 1)
        # the padding row is kept at zero, but weights set by hand need not be; embedding_bag
        # ignores it whatever it holds, and so must this
        emb = emb.masked_fill(~present.unsqueeze(2), 0.0)  # (B, W, D)
        if mode == "sum":
            return emb.sum(dim=1)  # (B, D)
        if mode == "mean":
            return emb.sum(dim=1) / count.clamp(min=1).to(emb.dtype)  # (B, D)
        fill = torch.finfo(emb.dtype).min
        top = emb.masked_fill(~present.unsqueeze(2), fill).amax(dim=1)  # (B, D)
        return torch.where(count > 0, top, torch.zeros_like(top))  # (B, D); empty rows 0

    def _check_range(self, ids: Tensor, m: int) -> None:
        bad = (ids < -1) | (ids >= self.fields.sizes[m])  # (B, W)
        if bool(bad.any()):
            row, col = (int(i) for i in bad.nonzero()[0])
            raise ValueError(f"multi-valued id {int(ids[row, col])} out of range [-1, "
                             f"{self.fields.sizes[m]}) for {self.fields.names[m]} at batch row "
                             f"{row}")


def bag_fields(sizes: Sequence[int], widths: Sequence[int], pooling: Sequence[str],
               names: Sequence[str]) -> BagFields | None:
    """:class:`BagFields` of the given fields, or None when there are none."""
    if not sizes:
        return None
    return BagFields(tuple(sizes), tuple(widths), tuple(pooling), tuple(names))
