"""How much of a file's categorical values fall out of the vocabulary, against how much the
training data leads one to expect: the check that catches values written differently at
training and at scoring time ("863" in one file, "863.0" in the other), which otherwise
score silently as unseen values.

**Expected share.** A vocabulary learned with ``min_count = m`` holds, by construction, every
training value seen at least m times, so the training rows' own out-of-vocabulary share
understates what new rows from the same source show: values never seen in training are out of
vocabulary too. The Good-Turing estimate gives the share of new values whose value was seen
exactly r times in training as ``(r + 1) n_{r+1} / N``, where ``n_k`` counts the distinct
values seen k times and N the non-missing values; r = 0 is the unseen mass ``n_1 / N``. The
expected out-of-vocabulary share of a field's rows is therefore

    expected = (N / rows) * ( sum_{r=0}^{m-1} (r + 1) n_{r+1} / N  +  dropped / N )

with ``dropped`` the training count of values cut by ``max_vocab_size`` (kept at their
training frequency) and ``N / rows`` the share of rows where the field is not missing.

**The warning.** Scoring rows whose observed share o is at least 0.1 above the expected e and
at least twice it (``o >= e + 0.1`` and ``o >= 2 e``), over at least :data:`MIN_ROWS` rows,
gets a warning naming the field. An encoder saved before this check has no expected share:
then only ``o >= 0.5`` warns. Hashed fields have no vocabulary and are not checked.

Example:
    >>> counts = pa.table({"value": ["a", "b", "c"], "count": [5, 1, 1]})
    >>> round(expected_oov_share(counts, rows=8, min_count=1, max_vocab_size=None), 4)
    0.25
    >>> tally = OOVTally(("city",))
    >>> tally.add(np.array([[1], [1], [2], [1]] * 10))  # 40 rows, id 1 = out of vocabulary
    >>> tally.shares()
    {'city': 0.75}
    >>> oov_warnings(tally, {"city": 0.05})[0][:60]
    'city: 75.0% of its values are out of the vocabulary here, 5.'
    >>> oov_warnings(tally, {"city": 0.7})  # about what training leads one to expect
    []
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from crossrank.data.vocabulary import OOV_ID

MIN_ROWS = 20  # fewer scored rows than this: shares too noisy to warn about
_MARGIN = 0.1  # the observed share must exceed the expected by this much ...
_RATIO = 2.0  # ... and be at least this many times it
_NO_BASELINE = 0.5  # without an expected share, warn from this observed share


def expected_oov_share(counts: pa.Table, *, rows: int, min_count: int,
                       max_vocab_size: int | None) -> float:
    """Expected out-of-vocabulary share of new rows for one field (the module doc's formula).

    Args:
        counts: the field's training value counts, columns ``value`` and ``count``.
        rows: training rows, the field's missing values included.
        min_count, max_vocab_size: the encoder's options.

    Shape:
        counts: (V, 2) -> a float in [0, 1].
    """
    if rows <= 0:
        return 0.0
    c = counts["count"].to_numpy().astype(np.int64) if counts.num_rows else np.zeros(0, np.int64)
    n = int(c.sum())
    if n == 0:
        return 0.0
    n_k = np.bincount(c, minlength=min_count + 2)  # n_k[k]: distinct values seen k times
    good_turing = sum((r + 1) * int(n_k[r + 1]) for r in range(min_count))
    kept = np.sort(c[c >= min_count])[::-1]  # the vocabulary takes the most frequent first
    dropped = int(kept[max_vocab_size:].sum()) if max_vocab_size is not None else 0
    return min(1.0, (good_turing + dropped) / rows)


class OOVTally:
    """Counts out-of-vocabulary ids per field over encoded batches.

    Shape:
        add: sparse ids (B, F) int64, column j being ``fields[j]``.
    """

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        self.rows = 0
        self._oov = np.zeros(len(self.fields), dtype=np.int64)

    def add(self, sparse: np.ndarray) -> None:
        if not self.fields:  # hashed fields: nothing is out of vocabulary
            self.rows += len(sparse)
            return
        if sparse.ndim != 2 or sparse.shape[1] != len(self.fields):
            raise ValueError(f"sparse must be (B, {len(self.fields)}), got {sparse.shape}")
        self.rows += sparse.shape[0]
        self._oov += (sparse == OOV_ID).sum(axis=0)  # (F,)

    def shares(self) -> dict[str, float]:
        """Per field, the share of rows whose value was out of the vocabulary."""
        if self.rows == 0:
            return {f: 0.0 for f in self.fields}
        return {f: int(k) / self.rows for f, k in zip(self.fields, self._oov, strict=True)}


def oov_warnings(tally: OOVTally, expected: Mapping[str, float] | None) -> list[str]:
    """One line per field whose share is far above what training leads one to expect (the
    module doc's rule); ``expected`` None means the encoder recorded none."""
    if tally.rows < MIN_ROWS:
        return []
    lines = []
    for field, seen in tally.shares().items():
        if expected is None or field not in expected:
            if seen >= _NO_BASELINE:
                lines.append(f"{field}: {seen:.1%} of its values are out of the vocabulary here "
                             "(the model records no expected share)")
            continue
        e = expected[field]
        if seen >= e + _MARGIN and seen >= _RATIO * e:
            lines.append(f"{field}: {seen:.1%} of its values are out of the vocabulary here, "
                         f"{e:.1%} expected from the training data (values written differently "
                         'than in training, e.g. "863" vs "863.0"?)')
    return lines


def expected_shares(stats_counts: Mapping[str, pa.Table], *, rows: int, min_count: int,
                    max_vocab_size: int | None) -> dict[str, float]:
    """:func:`expected_oov_share` for every field of ``stats_counts`` (field -> value counts)."""
    return {f: round(expected_oov_share(t, rows=rows, min_count=min_count,
                                        max_vocab_size=max_vocab_size), 6)
            for f, t in stats_counts.items()}


__all__ = ["MIN_ROWS", "OOVTally", "expected_oov_share", "expected_shares", "oov_warnings"]
