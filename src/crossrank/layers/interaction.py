"""DLRM feature interactions: dot product and projection."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from crossrank.layers.mlp import MLP
from crossrank.layers.validation import check_choice, check_float_input, check_positive_int
from crossrank.ops import reference
from crossrank.ops.dispatch import BACKENDS, dot_interaction


def _check_dense_sparse(dense: Tensor, sparse: Tensor) -> None:
    check_float_input("dense", dense, ndim=2)
    check_float_input("sparse", sparse, ndim=3, last_dim=dense.shape[1])
    if sparse.shape[0] != dense.shape[0]:
        raise ValueError(f"dense and sparse must share the batch size, got {dense.shape[0]} "
                         f"and {sparse.shape[0]}")


class DotInteraction(nn.Module):
    """DLRM's default interaction: pairwise dot products of the dense vector and F embeddings.

    ``T = [dense; e_1; ...; e_F]`` is (B, F+1, D); the output is ``dense`` followed by the
    strictly upper triangle of ``T T^T`` read row by row (with the diagonal when
    ``self_interaction``): width ``D + (F+1)F/2``.

    Shape:
        dense: (B, D); sparse: (B, F, D) -> (B, D + (F+1)F/2).

    Example:
        >>> import torch
        >>> DotInteraction()(torch.randn(2, 4), torch.randn(2, 3, 4)).shape
        torch.Size([2, 10])
        >>> DotInteraction.output_dim(3, 4)
        10
    """

    def __init__(self, *, self_interaction: bool = False, backend: str = "auto") -> None:
        super().__init__()
        self.self_interaction = self_interaction
        self.backend = check_choice("backend", backend, BACKENDS)

    @staticmethod
    def output_dim(num_sparse: int, embedding_dim: int, *, self_interaction: bool = False) -> int:
        return embedding_dim + reference.num_dot_interactions(num_sparse + 1, self_interaction)

    def forward(self, dense: Tensor, sparse: Tensor) -> Tensor:
        _check_dense_sparse(dense, sparse)
        return dot_interaction(dense, sparse, self_interaction=self.self_interaction,
                               backend=self.backend)  # type: ignore[arg-type]


class ProjectionInteraction(nn.Module):
    """DLRM's projection interaction.

    Two MLP branches read the flattened ``[dense; e_1..e_F]`` (width (F+1)D); their outputs
    are reshaped to (B, F1, D) and (B, D, F2), multiplied, flattened and concatenated after the
    dense vector: width ``D + F1 * F2``.

    Args:
        num_sparse: F.
        embedding_dim: D.
        branch1_sizes, branch2_sizes: each branch's layer sizes; the last must be a multiple
            of D (F1 = last1 / D, F2 = last2 / D).

    Shape:
        dense: (B, D); sparse: (B, F, D) -> (B, D + F1 * F2).

    Example:
        >>> import torch
        >>> p = ProjectionInteraction(3, 4, branch1_sizes=[16, 8], branch2_sizes=[12])
        >>> p(torch.randn(2, 4), torch.randn(2, 3, 4)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        num_sparse: int,
        embedding_dim: int,
        *,
        branch1_sizes: Sequence[int],
        branch2_sizes: Sequence[int],
        activation: str = "relu",
    ) -> None:
        super().__init__()
        f = check_positive_int("num_sparse", num_sparse)
        d = check_positive_int("embedding_dim", embedding_dim)
        widths = []
        for name, sizes in (("branch1_sizes", branch1_sizes), ("branch2_sizes", branch2_sizes)):
            sizes = tuple(sizes)
            if not sizes or sizes[-1] % d:
                raise ValueError(f"{name} must end in a multiple of embedding_dim={d}, "
                                 f"got {sizes!r}")
            widths.append(sizes[-1] // d)
        self.embedding_dim, self.num_sparse = d, f
        self.f1, self.f2 = widths
        self.branch1 = MLP((f + 1) * d, branch1_sizes, activation=activation)
        self.branch2 = MLP((f + 1) * d, branch2_sizes, activation=activation)

    @property
    def output_dim(self) -> int:
        return self.embedding_dim + self.f1 * self.f2

    def forward(self, dense: Tensor, sparse: Tensor) -> Tensor:
        _check_dense_sparse(dense, sparse)
        if sparse.shape[1] != self.num_sparse:
            raise ValueError(f"sparse must have {self.num_sparse} fields, got {sparse.shape[1]}")
        b = dense.shape[0]
        flat = torch.cat([dense, sparse.reshape(b, -1)], dim=1)  # (B, (F+1)D)
        y = self.branch1(flat)  # (B, F1*D)
        z = self.branch2(flat)  # (B, D*F2)
        inter = reference.projection_product(y, z, self.embedding_dim)  # (B, F1*F2)
        return torch.cat([dense, inter], dim=1)  # (B, D + F1*F2)
