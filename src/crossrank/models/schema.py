"""FeatureSchema: what a model's inputs are (field names, vocabulary sizes, embedding dim)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossrank.models.config import from_dict


@dataclass(frozen=True)
class FeatureSchema:
    """Names of the dense and categorical inputs, vocabulary sizes and embedding dim.

    Shape:
        a model built from it takes dense: (B, len(dense)) float and
        sparse: (B, len(sparse)) int64 with ``sparse[:, f] < vocab_sizes[f]``.

    Example:
        >>> s = FeatureSchema(dense=("age",), sparse=("user", "item"), vocab_sizes=(10, 20),
        ...                   embedding_dim=4)
        >>> s.cross_width  # x0 = [dense, embeddings]
        9
    """

    dense: tuple[str, ...] = ()
    sparse: tuple[str, ...] = ()
    vocab_sizes: tuple[int, ...] = ()
    embedding_dim: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "dense", tuple(self.dense))
        object.__setattr__(self, "sparse", tuple(self.sparse))
        object.__setattr__(self, "vocab_sizes", tuple(self.vocab_sizes))
        if len(self.sparse) != len(self.vocab_sizes):
            raise ValueError(f"vocab_sizes has {len(self.vocab_sizes)} entries for "
                             f"{len(self.sparse)} sparse fields")
        if not self.dense and not self.sparse:
            raise ValueError("a FeatureSchema needs at least one dense or sparse field")
        names = self.dense + self.sparse
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"field names must be unique, got duplicates {dup}")
        for name, size in zip(self.sparse, self.vocab_sizes):
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                raise ValueError(f"vocab size of {name!r} must be a positive int, got {size!r}")
        if isinstance(self.embedding_dim, bool) or not isinstance(self.embedding_dim, int) \
                or self.embedding_dim <= 0:
            raise ValueError(f"embedding_dim must be a positive int, got {self.embedding_dim!r}")

    @property
    def num_dense(self) -> int:
        return len(self.dense)

    @property
    def num_sparse(self) -> int:
        return len(self.sparse)

    @property
    def cross_width(self) -> int:
        """N of the stacked input ``x0 = [dense, e_1, ..., e_F]`` used by DCN and DNN."""
        return self.num_dense + self.num_sparse * self.embedding_dim

    def field_blocks(self) -> list[tuple[str, int, int]]:
        """``(name, start, stop)`` column ranges of each field in ``x0 = [dense, e_1..e_F]``.

        Example:
            >>> FeatureSchema(dense=("a",), sparse=("u",), vocab_sizes=(5,),
            ...               embedding_dim=3).field_blocks()
            [('a', 0, 1), ('u', 1, 4)]
        """
        blocks = [(name, i, i + 1) for i, name in enumerate(self.dense)]
        start = self.num_dense
        for name in self.sparse:
            blocks.append((name, start, start + self.embedding_dim))
            start += self.embedding_dim
        return blocks

    def to_dict(self) -> dict[str, Any]:
        return {"dense": list(self.dense), "sparse": list(self.sparse),
                "vocab_sizes": list(self.vocab_sizes), "embedding_dim": self.embedding_dim}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        return from_dict(cls, data)
