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

    Shape:
        a model built from it takes dense: (B, len(dense)) float and
        categorical: (B, len(categorical)) int64 with ``categorical[:, f] < vocab_sizes[f]``.

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

    def __init__(self, dense: Sequence[str] = (), categorical: Sequence[str] = (),
                 vocab_sizes: Sequence[int] = (), embedding_dim: int = 16, *,
                 sparse: Sequence[str] | None = None) -> None:
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
        self._validate()

    def _validate(self) -> None:
        if len(self.categorical) != len(self.vocab_sizes):
            raise ValueError(f"vocab_sizes has {len(self.vocab_sizes)} entries for "
                             f"{len(self.categorical)} categorical fields")
        if not self.dense and not self.categorical:
            raise ValueError("a FeatureSchema needs at least one dense or categorical field")
        names = self.dense + self.categorical
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"field names must be unique, got duplicates {dup}")
        for name, size in zip(self.categorical, self.vocab_sizes):
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                raise ValueError(f"vocab size of {name!r} must be a positive int, got {size!r}")
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
    def cross_width(self) -> int:
        """N of the stacked input ``x0 = [dense, e_1, ..., e_F]`` used by DCN and DNN."""
        return self.num_dense + self.num_categorical * self.embedding_dim

    def field_blocks(self) -> list[tuple[str, int, int]]:
        """``(name, start, stop)`` column ranges of each field in ``x0 = [dense, e_1..e_F]``.

        Example:
            >>> FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(5,),
            ...               embedding_dim=3).field_blocks()
            [('a', 0, 1), ('u', 1, 4)]
        """
        blocks = [(name, i, i + 1) for i, name in enumerate(self.dense)]
        start = self.num_dense
        for name in self.categorical:
            blocks.append((name, start, start + self.embedding_dim))
            start += self.embedding_dim
        return blocks

    def to_dict(self) -> dict[str, Any]:
        return {"dense": list(self.dense), "categorical": list(self.categorical),
                "vocab_sizes": list(self.vocab_sizes), "embedding_dim": self.embedding_dim}

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
