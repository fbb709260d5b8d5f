"""DNN: the plain deep network baseline over the same embedding-and-stacking input."""

from __future__ import annotations

from torch import Tensor, nn

from crossrank.layers.mlp import MLP
from crossrank.models.base import RankingModel, make_embedding, stack_inputs
from crossrank.models.config import DNNConfig
from crossrank.models.schema import FeatureSchema


class DNN(RankingModel):
    """``logit = w^T mlp([dense, e_1, ..., e_F]) + c``: no explicit crosses.

    Shape:
        dense: (B, n_dense); sparse: (B, F) int64 -> logits (B,).

    Example:
        >>> import torch
        >>> schema = FeatureSchema(dense=("a",), sparse=("u",), vocab_sizes=(4,),
        ...                        embedding_dim=2)
        >>> DNN(schema, DNNConfig(deep_layers=(8, 4)))(torch.rand(3, 1),
        ...                                            torch.tensor([[0], [1], [3]])).shape
        torch.Size([3])
    """

    def __init__(self, schema: FeatureSchema, config: DNNConfig | None = None) -> None:
        super().__init__()
        cfg = config or DNNConfig()
        self.schema, self.config, self.task = schema, cfg, cfg.task
        self.embedding = make_embedding(schema, l2=cfg.embedding_l2,
                                        sparse_gradients=cfg.sparse_gradients)
        self.deep = MLP(schema.cross_width, cfg.deep_layers, dropout=cfg.dropout, norm=cfg.norm) \
            if cfg.deep_layers else None
        self.output = nn.Linear(self.deep.out_features if self.deep else schema.cross_width, 1)

    def forward(self, dense: Tensor | None, sparse: Tensor | None = None) -> Tensor:
        dense, sparse = self.check_inputs(dense, sparse)
        x0 = stack_inputs(dense, sparse, self.embedding)  # (B, N)
        h = self.deep(x0) if self.deep is not None else x0
        return self.output(h).squeeze(1)  # (B,)
