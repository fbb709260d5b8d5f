"""DLRM: bottom MLP, embeddings, a feature interaction (dot, DCN or projection), top MLP."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.layers.cross import CrossNet
from crossrank.layers.interaction import DotInteraction, ProjectionInteraction
from crossrank.layers.mlp import MLP
from crossrank.models.base import RankingModel, make_embedding
from crossrank.models.config import DLRMConfig
from crossrank.models.schema import FeatureSchema


class DLRM(RankingModel):
    """DLRM with TorchRec's three interaction architectures.

    ``d = bottom(dense)`` (B, D); ``e = embedding(sparse)`` (B, F, D); then
    * "dot": ``[d, triu(T T^T)]`` with ``T = [d; e]``, width D + (F+1)F/2;
    * "dcn": a (low-rank) cross network over ``[d, e_1..e_F]`` flattened, width (F+1)D;
    * "projection": ``[d, flat(Y Z)]``, width D + F1*F2;
    and ``logit = top(interaction)``.

    Shape:
        dense: (B, n_dense); sparse: (B, F) int64 -> logits (B,).

    Example:
        >>> schema = FeatureSchema(dense=("i1", "i2"), sparse=("c1", "c2"),
        ...                        vocab_sizes=(5, 7), embedding_dim=4)
        >>> cfg = DLRMConfig(bottom_layers=(8, 4), top_layers=(8,), interaction="dcn",
        ...                  dcn_rank=2)
        >>> DLRM(schema, cfg)(torch.rand(1, 2), torch.tensor([[1, 6]])).shape
        torch.Size([1])
    """

    def __init__(self, schema: FeatureSchema, config: DLRMConfig | None = None) -> None:
        super().__init__()
        cfg = config or DLRMConfig()
        self.schema, self.config, self.task = schema, cfg, cfg.task
        d, f = schema.embedding_dim, schema.num_sparse
        if not schema.num_dense or not f:
            raise ValueError(f"DLRM needs dense and sparse fields, got {schema.num_dense} dense "
                             f"and {f} sparse")
        if not cfg.bottom_layers or cfg.bottom_layers[-1] != d:
            raise ValueError(f"bottom_layers must end in embedding_dim={d}, "
                             f"got {cfg.bottom_layers!r}")
        self.bottom = MLP(schema.num_dense, cfg.bottom_layers)
        self.embedding = make_embedding(schema, l2=cfg.embedding_l2,
                                        sparse_gradients=cfg.sparse_gradients)
        self.interaction: nn.Module
        if cfg.interaction == "dot":
            self.interaction = DotInteraction(self_interaction=cfg.self_interaction,
                                              backend=cfg.backend)
            width = DotInteraction.output_dim(f, d, self_interaction=cfg.self_interaction)
        elif cfg.interaction == "dcn":
            width = (f + 1) * d
            self.interaction = CrossNet(width, cfg.dcn_num_layers, rank=cfg.dcn_rank,
                                        diag_scale=cfg.dcn_diag_scale, kernel_l2=cfg.cross_l2,
                                        backend=cfg.backend)
        else:
            proj = ProjectionInteraction(f, d, branch1_sizes=cfg.projection_branch1,
                                         branch2_sizes=cfg.projection_branch2)
            self.interaction, width = proj, proj.output_dim
        self._width = (f + 1) * d  # the flattened [bottom(dense), e_1..e_F]
        self.top = MLP(width, tuple(cfg.top_layers) + (1,), activate_last=False)

    def cross_field_blocks(self) -> list[tuple[str, int, int]]:
        """Field blocks of the DCN interaction's input ``[bottom(dense), e_1..e_F]``."""
        d = self.schema.embedding_dim
        names = ("dense",) + self.schema.sparse
        return [(name, i * d, (i + 1) * d) for i, name in enumerate(names)]

    @property
    def cross(self) -> CrossNet | None:
        """The cross network of ``interaction="dcn"``, else None."""
        return self.interaction if isinstance(self.interaction, CrossNet) else None

    def cross_input(self, dense: Tensor | None, sparse: Tensor | None) -> Tensor:
        """The DCN interaction's input ``[bottom(dense), e_1..e_F]`` flattened: (B, (F+1)D)."""
        d, e = self._arches(dense, sparse)
        return torch.cat([d.unsqueeze(1), e], dim=1).reshape(d.shape[0], self._width)  # (B, (F+1)D)

    def _arches(self, dense: Tensor | None, sparse: Tensor | None) -> tuple[Tensor, Tensor]:
        dense, sparse = self.check_inputs(dense, sparse)
        assert self.embedding is not None and sparse is not None  # checked in __init__
        return self.bottom(dense), self.embedding(sparse)  # (B, D), (B, F, D)

    def forward(self, dense: Tensor | None, sparse: Tensor | None = None) -> Tensor:
        d, e = self._arches(dense, sparse)
        if isinstance(self.interaction, CrossNet):
            z = self.interaction(torch.cat([d.unsqueeze(1), e], dim=1).reshape(d.shape[0], self._width))
        else:
            z = self.interaction(d, e)  # (B, width)
        return self.top(z).squeeze(1)  # (B,)
