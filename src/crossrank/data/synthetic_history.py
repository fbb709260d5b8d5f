"""Synthetic clicks with a user history: a multi-valued field whose pooled embedding matters.

Items belong to ``num_categories`` categories of ``items_per_category`` items each (item id
``c * items_per_category + k``). A row holds::

    history  0..max_history recent items (length uniform), each of a uniform category and,
             within it, a Zipf-ranked item; written '|'-joined, most recent last
    target   one item, drawn the same way
    noise    a dense column that carries nothing

and its click probability is ``p_hit`` when the target's category appears in the history,
``p_miss`` otherwise. Categories are uniform in histories and targets alike, so the target
alone (or the history alone) says nothing about the click: ``P(hit | target)`` is the same
``q = E_L[1 - (1 - 1/C)^L]`` for every target. A model that sees the target alone can reach AUC
0.5 at best; one that pools the history can reach the AUC of the hit indicator itself,
:meth:`HistorySpec.hit_auc` (the best any model can do: the click depends on nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crossrank.data.multi_valued import MultiValuedSpec
from crossrank.data.schema import TableSchema

__all__ = ["HistorySpec", "make_history_clicks"]


@dataclass(frozen=True)
class HistorySpec:
    """The click model of :func:`make_history_clicks`.

    Example:
        >>> round(HistorySpec(num_categories=4, max_history=8).hit_rate, 3)
        0.589
    """

    num_categories: int = 4
    items_per_category: int = 50
    max_history: int = 8
    zipf_a: float = 1.3
    p_hit: float = 0.6
    p_miss: float = 0.1

    def __post_init__(self) -> None:
        for key in ("num_categories", "items_per_category", "max_history"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if not (0 < self.p_miss < 1 and 0 < self.p_hit < 1 and self.zipf_a > 1):
            raise ValueError(f"need 0 < p_miss, p_hit < 1 and zipf_a > 1, got {self}")

    @property
    def hit_rate(self) -> float:
        """q = P(the target's category is in the history), lengths uniform on 0..N."""
        lengths = np.arange(self.max_history + 1)
        return float(np.mean(1.0 - (1.0 - 1.0 / self.num_categories) ** lengths))

    def hit_auc(self) -> float:
        """AUC of the hit indicator as a score: ``1/2 + (P(hit | click) - P(hit | no click))/2``
        (a binary score's AUC, ties counted half); the best AUC of any model of this data."""
        q, p1, p0 = self.hit_rate, self.p_hit, self.p_miss
        among_clicks = q * p1 / (q * p1 + (1 - q) * p0)
        among_others = q * (1 - p1) / (q * (1 - p1) + (1 - q) * (1 - p0))
        return 0.5 + 0.5 * (among_clicks - among_others)

    def table_schema(self) -> TableSchema:
        """``label``, ``noise`` dense, ``target`` categorical, ``history`` multi-valued (sum
        pooling, the most recent ``max_history`` kept)."""
        history = MultiValuedSpec("history", separator="|", pooling="sum",
                                  max_length=self.max_history, keep="last")
        return TableSchema(label="label", dense=("noise",), categorical=("target",),
                           multi_valued=(history,))


def _items(rng: np.random.Generator, n: int, spec: HistorySpec) -> tuple[np.ndarray, np.ndarray]:
    """n items: their categories (uniform) and ids (Zipf rank within the category)."""
    category = rng.integers(0, spec.num_categories, n)
    rank = np.minimum(rng.zipf(spec.zipf_a, n), spec.items_per_category) - 1
    return category, category * spec.items_per_category + rank


def make_history_clicks(num_rows: int, *, seed: int = 0,
                        spec: HistorySpec | None = None) -> pa.Table:
    """``num_rows`` rows of the click model of ``spec`` (see the module doc), vectorized.

    Example:
        >>> t = make_history_clicks(5, seed=1)
        >>> t.column_names
        ['label', 'noise', 'target', 'history']
    """
    spec = spec or HistorySpec()
    if isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows < 0:
        raise ValueError(f"num_rows must be a non-negative int, got {num_rows!r}")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, spec.max_history + 1, num_rows)
    categories, items = _items(rng, int(lengths.sum()), spec)
    target_category, target = _items(rng, num_rows, spec)
    rows = np.repeat(np.arange(num_rows), lengths)  # (elements,)
    match = categories == target_category[rows]
    hit = np.bincount(rows[match], minlength=num_rows) > 0
    p = np.where(hit, spec.p_hit, spec.p_miss)
    label = (rng.random(num_rows) < p).astype(np.float64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    texts = pc.cast(pa.array(items), pa.string())
    history = pc.binary_join(pa.ListArray.from_arrays(offsets, texts), "|")
    return pa.table({"label": label, "noise": rng.standard_normal(num_rows),
                     "target": pc.cast(pa.array(target), pa.string()), "history": history})
