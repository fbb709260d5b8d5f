"""Ranking field pairs: unordered crosses from an ordered (row field, column field) matrix.

Block (i, j) of a cross matrix weighs ``x0_i * x_j`` and block (j, i) weighs ``x0_j * x_i``:
after one layer both are the same cross of fields i and j, so a pair's score is the norm of
both blocks together, ``sqrt(I[i,j]^2 + I[j,i]^2)``. A self pair (i, i) crosses a field with
itself (squares, or dims of one embedding with each other, and the ``diag_scale`` term) and is
ranked with the others but flagged ``is_self``. ``share`` is the pair's part of the squared
Frobenius norm of the whole matrix; the shares of all pairs sum to 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class PairScore:
    """One unordered field pair: ``score = sqrt(I[i,j]^2 + I[j,i]^2)`` (``I[i,i]`` if self)."""

    rank: int
    field_i: str
    field_j: str
    index_i: int
    index_j: int
    score: float
    share: float
    is_self: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank_pairs(matrix: Tensor, fields: tuple[str, ...] | list[str], *, top_k: int | None = None,
               include_self: bool = True) -> list[PairScore]:
    """Unordered pairs ``i <= j`` of a non-negative (F, F) matrix, strongest first.

    Args:
        matrix: (F, F) block norms, rows the x0 side, columns the x_l side.
        fields: the F names.
        top_k: keep the first ``top_k`` pairs (None: all F (F + 1) / 2).
        include_self: rank self pairs (i, i) too; False ranks only crosses of two fields.

    Shape:
        matrix: (F, F).

    Example:
        >>> m = torch.tensor([[1.0, 3.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
        >>> [(p.field_i, p.field_j, p.score, p.is_self) for p in rank_pairs(m, "abc", top_k=2)]
        [('a', 'b', 5.0, False), ('c', 'c', 2.0, True)]
    """
    if not isinstance(matrix, Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be a square (F, F) tensor, got "
                         f"{getattr(matrix, 'shape', type(matrix).__name__)}")
    names = tuple(fields)
    f = matrix.shape[0]
    if len(names) != f:
        raise ValueError(f"fields must name the {f} rows of matrix, got {len(names)} names")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"top_k must be None or a positive int, got {top_k!r}")
    sq = matrix.to(torch.float64).pow(2)  # (F, F)
    total = float(sq.sum())
    sym = sq + sq.T  # (F, F): both orientations of a pair
    rows, cols = torch.triu_indices(f, f, offset=0 if include_self else 1)
    scores = torch.where(rows == cols, sq[rows, cols], sym[rows, cols])  # (P,)
    # Stable sort keeps the row-major order among equal scores, so the table is reproducible.
    order = torch.sort(scores, descending=True, stable=True).indices
    if top_k is not None:
        order = order[:top_k]
    out = []
    for rank, k in enumerate(order.tolist(), start=1):
        i, j, s = int(rows[k]), int(cols[k]), float(scores[k])
        out.append(PairScore(rank=rank, field_i=names[i], field_j=names[j], index_i=i, index_j=j,
                             score=s ** 0.5, share=s / total if total > 0 else 0.0,
                             is_self=i == j))
    return out


def format_pair_table(pairs: list[PairScore]) -> str:
    """A fixed-width text table of ranked pairs.

    Example:
        >>> print(format_pair_table([PairScore(1, "a", "b", 0, 1, 5.0, 0.862, False)]))
        rank  field i  field j     score   share  kind
           1  a        b          5.0000   86.2%  cross
    """
    wi = max([7] + [len(p.field_i) for p in pairs])
    wj = max([7] + [len(p.field_j) for p in pairs])
    lines = [f"{'rank':>4}  {'field i':<{wi}}  {'field j':<{wj}}  {'score':>8}  {'share':>6}  kind"]
    for p in pairs:
        kind = "self" if p.is_self else "cross"
        lines.append(f"{p.rank:>4}  {p.field_i:<{wi}}  {p.field_j:<{wj}}  {_num(p.score):>8}  "
                     f"{100 * p.share:>5.1f}%  {kind}")
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:.4f}" if 1e-3 <= abs(x) < 1e4 or x == 0 else f"{x:.2e}"
