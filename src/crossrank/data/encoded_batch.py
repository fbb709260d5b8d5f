"""The encoded form of a chunk of rows: what :class:`~crossrank.data.encoders.FeatureEncoder`
produces and what caches and datasets hold (:mod:`crossrank.data.cache`,
:mod:`crossrank.data.dataset`), without depending on the encoder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EncodedBatch:
    """One encoded chunk.

    Shape:
        dense: float32 (B, D_out); sparse: int64 (B, F); label: float32 (B,) or None;
        ids: (B,) int64 or unicode (``numpy.str_``) or None; weight: float32 (B,) or None
        (the schema's weight column, finite and >= 0). With multi-valued fields,
        ``sparse`` is (B, F + sum of their widths): each field's ids padded with -1 after the
        categorical ids (the models' input; (B, F) when encoded with ``pad_lists=False``),
        and ``multi_valued`` holds each field's jagged ids, values (E,) and offsets (B+1,)
        int64.

    Example:
        >>> b = EncodedBatch(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.int64), None, None)
        >>> len(b), b.sparse.shape
        (2, (2, 4))
    """

    dense: np.ndarray
    sparse: np.ndarray
    label: np.ndarray | None
    ids: np.ndarray | None
    multi_valued: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    weight: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.sparse.shape[0])
