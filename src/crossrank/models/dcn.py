"""DCN: embedding-and-stacking, a cross network and a deep network (stacked or parallel)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.layers.cross import CrossNet
from crossrank.layers.factorization import FactorizationMachine
from crossrank.layers.first_order import FirstOrder
from crossrank.layers.mlp import MLP
from crossrank.models.base import RankingModel, make_embedding, stack_inputs
from crossrank.models.config import DCNConfig
from crossrank.models.schema import FeatureSchema


class DCN(RankingModel):
    """Deep & Cross Network over ``x0 = [dense, e_1, ..., e_F]`` (N = n_dense + F*D).

    * "stacked": ``logit = w^T deep(cross(x0)) + c``
    * "parallel": ``logit = w^T [cross(x0), deep(x0)] + c`` (the combination layer)
    * "cross_only": ``logit = w^T cross(x0) + c``

    Any CrossNet variant: full rank, low rank (``rank``), DCN-Mix (``num_experts``), DCN v1
    (``cross_kind="vector"``). ``first_order=True`` adds the linear ("wide") term
    ``w_d . dense + sum_f w_f[id_f]`` to the logit (:class:`~crossrank.layers.FirstOrder`);
    ``fm_dim=K`` adds a factorization machine's pairwise term ``sum_{i<j} <v_i, v_j>`` with its
    own K-long factors (:class:`~crossrank.layers.FactorizationMachine`).

    Shape:
        dense: (B, n_dense); sparse: (B, F) int64 -> logits (B,).

    Example:
        >>> schema = FeatureSchema(dense=("x1", "x2"), sparse=("u",), vocab_sizes=(10,),
        ...                        embedding_dim=4)
        >>> model = DCN(schema, DCNConfig(rank=2, deep_layers=(8,)))
        >>> model(torch.rand(1, 2), torch.tensor([[3]])).shape
        torch.Size([1])
    """

    def __init__(self, schema: FeatureSchema, config: DCNConfig | None = None) -> None:
        super().__init__()
        cfg = config or DCNConfig()
        self.schema, self.config, self.task = schema, cfg, cfg.task
        n = schema.cross_width
        self.embedding = make_embedding(schema, l2=cfg.embedding_l2,
                                        sparse_gradients=cfg.sparse_gradients)
        self.cross = CrossNet(
            n, cfg.num_cross_layers, rank=cfg.rank, num_experts=cfg.num_experts,
            diag_scale=cfg.diag_scale, use_bias=cfg.use_bias, activation=cfg.cross_activation,
            kind=cfg.cross_kind, kernel_l2=cfg.cross_l2, backend=cfg.backend,
        )
        self.deep: MLP | None = None
        if cfg.structure != "cross_only" and cfg.deep_layers:
            self.deep = MLP(n, cfg.deep_layers, dropout=cfg.dropout, norm=cfg.norm)
        if self.deep is None:
            head_in = n
        elif cfg.structure == "stacked":
            head_in = self.deep.out_features
        else:
            head_in = n + self.deep.out_features
        self.output = nn.Linear(head_in, 1)
        self.first_order: FirstOrder | None = None
        if cfg.first_order:
            self.first_order = FirstOrder(schema.num_dense, schema.vocab_sizes,
                                          l2=cfg.first_order_l2, sparse=cfg.sparse_gradients,
                                          field_names=schema.sparse,
                                          lr_scale=cfg.first_order_lr_scale)
        self.fm: FactorizationMachine | None = None
        if cfg.fm_dim:
            self.fm = FactorizationMachine(schema.vocab_sizes, cfg.fm_dim, l2=cfg.fm_l2,
                                           sparse=cfg.sparse_gradients, field_names=schema.sparse)

    def cross_field_blocks(self) -> list[tuple[str, int, int]]:
        """Field blocks of the cross network's input, for model understanding."""
        return self.schema.field_blocks()

    def cross_input(self, dense: Tensor | None, sparse: Tensor | None) -> Tensor:
        """x0, the cross network's input. Shape: (B, N)."""
        dense, sparse = self.check_inputs(dense, sparse)
        return stack_inputs(dense, sparse, self.embedding)

    def forward(self, dense: Tensor | None, sparse: Tensor | None = None) -> Tensor:
        dense, sparse = self.check_inputs(dense, sparse)
        x0 = stack_inputs(dense, sparse, self.embedding)  # (B, N)
        crossed = self.cross(x0)  # (B, N)
        if self.deep is None:
            h = crossed
        elif self.config.structure == "stacked":
            h = self.deep(crossed)
        else:
            h = torch.cat([crossed, self.deep(x0)], dim=1)  # (B, N + H)
        logits = self.output(h).squeeze(1)  # (B,)
        if self.first_order is not None:
            logits = logits + self.first_order(dense, sparse)
        if self.fm is not None:
            assert sparse is not None  # FactorizationMachine needs two or more fields
            logits = logits + self.fm(sparse)
        return logits
