"""FeatureSchema: what a model's inputs are (field names, vocabulary sizes, embedding dim)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crossrank.options import from_dict


@dataclass(frozen=True, init=False)
class FeatureSchema:
    """Names of the dense and categorical inputs, vocabulary sizes and embedding dim.

    ``categorical`` was called ``sparse`` before (a name ``TableSchema`` never used, and one
    easily confused with sparse gradients): ``sparse=`` is still accepted by the constructor
    and by :meth:`from_dict` (old ``model.json`` files), and ``.sparse``/``.num_sparse`` still
    read, all deprecated.

    Multi-valued fields (``multi_valued``, M of them, each with its ids per field
    ``multi_valued_sizes``, padded width ``multi_valued_widths`` and ``pooling``) are embedded
    and pooled into one vector each, M more fields after the categorical ones.

    Shape:
        a model built from it takes dense: (B, len(dense)) float and
        categorical: (B, len(categorical) + sum(multi_valued_widths)) int64 with
        ``categorical[:, f] < vocab_sizes[f]``, then each multi-valued field's ids padded
        with -1.

    Example:
        >>> s = FeatureSchema(dense=("age",), categorical=("user", "item"), vocab_sizes=(10, 20),
        ...                   embedding_dim=4)
        >>> s.cross_width  # x0 = [dense, embeddings]
        9
    """

    dense: tuple[str, ...]
    categorical: tuple[str, ...]
    vocab_sizes: tuple[int, ...]
    embedding_dim: int
    multi_valued: tuple[str, ...] = ()
    multi_valued_sizes: tuple[int, ...] = ()
    multi_valued_widths: tuple[int, ...] = ()
    pooling: tuple[str, ...] = ()

    def __init__(self, dense: Sequence[str] = (), categorical: Sequence[str] = (),
                 vocab_sizes: Sequence[int] = (), embedding_dim: int = 16, *,
                 sparse: Sequence[str] | None = None, multi_valued: Sequence[str] = (),
                 multi_valued_sizes: Sequence[int] = (), multi_valued_widths: Sequence[int] = (),
                 pooling: Sequence[str] = ()) -> None:
        if sparse is not None:
            if categorical:
                raise ValueError("give categorical= only (sparse= is its deprecated old name), "
                                 f"got both {tuple(categorical)!r} and {tuple(sparse)!r}")
            warnings.warn("FeatureSchema(sparse=...) is deprecated; use categorical=...",
                          DeprecationWarning, stacklevel=2)
            categorical = sparse
        object.__setattr__(self, "dense", tuple(dense))
        object.__setattr__(self, "categorical", tuple(categorical))
        object.__setattr__(self, "vocab_sizes", tuple(vocab_sizes))
        object.__setattr__(self, "embedding_dim", embedding_dim)
        object.__setattr__(self, "multi_valued", tuple(multi_valued))
        object.__setattr__(self, "multi_valued_sizes", tuple(multi_valued_sizes))
        object.__setattr__(self, "multi_valued_widths", tuple(multi_valued_widths))
        object.__setattr__(self, "pooling", tuple(pooling))
        self._validate()

    def _validate(self) -> None:
        if len(self.categorical) != len(self.vocab_sizes):
            raise ValueError(f"vocab_sizes has {len(self.vocab_sizes)} entries for "
                             f"{len(self.categorical)} categorical fields")
        m = len(self.multi_valued)
        if any(len(getattr(self, k)) != m for k in ("multi_valued_sizes", "multi_valued_widths",
                                                     "pooling")):
            raise ValueError(f"multi_valued_sizes, multi_valued_widths and pooling need one "
                             f"entry per multi-valued field {self.multi_valued}")
        if not self.dense and not self.categorical and not m:
            raise ValueError("a FeatureSchema needs at least one dense or categorical field")
        names = self.dense + self.categorical + self.multi_valued
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"field names must be unique, got duplicates {dup}")
        for name, size in zip(self.categorical + self.multi_valued * 2,
                              self.vocab_sizes + self.multi_valued_sizes + self.multi_valued_widths):
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                raise ValueError(f"vocab size and width of {name!r} must be positive ints, got "
                                 f"{size!r}")
        if any(p not in ("sum", "mean", "max") for p in self.pooling):
            raise ValueError(f"pooling must be sum, mean or max, got {self.pooling}")
        if isinstance(self.embedding_dim, bool) or not isinstance(self.embedding_dim, int) \
                or self.embedding_dim <= 0:
            raise ValueError(f"embedding_dim must be a positive int, got {self.embedding_dim!r}")

    @property
    def num_dense(self) -> int:
        return len(self.dense)

    @property
    def num_categorical(self) -> int:
        """F, the number of categorical (embedded) fields."""
        return len(self.categorical)

    @property
    def sparse(self) -> tuple[str, ...]:
        """Deprecated name of :attr:`categorical`."""
        return self.categorical

    @property
    def num_sparse(self) -> int:
        """Deprecated name of :attr:`num_categorical`."""
        return self.num_categorical

    @property
    def num_fields(self) -> int:
        """F + M, the embedded fields: categorical, then multi-valued (pooled)."""
        return len(self.categorical) + len(self.multi_valued)

    @property
    def field_names(self) -> tuple[str, ...]:
        """The embedded fields' names, in their order."""
        return self.categorical + self.multi_valued

    @property
    def categorical_width(self) -> int:
        """Columns of the ``categorical`` input: F plus the multi-valued fields' widths."""
        return len(self.categorical) + sum(self.multi_valued_widths)

    @property
    def cross_width(self) -> int:
        """N of the stacked input ``x0 = [dense, e_1, ..., e_{F+M}]`` used by DCN and DNN."""
        return self.num_dense + self.num_fields * self.embedding_dim

    def field_blocks(self) -> list[tuple[str, int, int]]:
        """``(name, start, stop)`` column ranges of each field in ``x0 = [dense, e_1..e_F]``.

        Example:
            >>> FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(5,),
            ...               embedding_dim=3).field_blocks()
            [('a', 0, 1), ('u', 1, 4)]
        """
        blocks = [(name, i, i + 1) for i, name in enumerate(self.dense)]
        start = self.num_dense
        for name in self.field_names:
            blocks.append((name, start, start + self.embedding_dim))
            start += self.embedding_dim
        return blocks

    def to_dict(self) -> dict[str, Any]:
        d = {"dense": list(self.dense), "categorical": list(self.categorical),
             "vocab_sizes": list(self.vocab_sizes), "embedding_dim": self.embedding_dim}
        if self.multi_valued:  # absent otherwise: model.json files without them read as before
            d |= {"multi_valued": list(self.multi_valued),
                  "multi_valued_sizes": list(self.multi_valued_sizes),
                  "multi_valued_widths": list(self.multi_valued_widths),
                  "pooling": list(self.pooling)}
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        """Inverse of :meth:`to_dict`; the old key ``sparse`` is read as ``categorical``.

        Example:
            >>> FeatureSchema.from_dict({"sparse": ["u"], "vocab_sizes": [3]}).categorical
            ('u',)
        """
        if isinstance(data, Mapping) and "sparse" in data and "categorical" not in data:
            data = {("categorical" if k == "sparse" else k): v for k, v in data.items()}
        return from_dict(cls, data, where="schema.")
