"""DNN: the plain deep network baseline over the same embedding-and-stacking input."""

from __future__ import annotations

from torch import Tensor, nn

from crossrank.layers.mlp import MLP
from crossrank.models.base import RankingModel
from crossrank.models.config import DNNConfig, resolve_terms
from crossrank.models.parts import make_embedding, make_logit_terms, stack_embedded, stack_inputs
from crossrank.models.schema import FeatureSchema


class DNN(RankingModel):
    """``logit = w^T mlp([dense, e_1, ..., e_F]) + c``, plus the terms of ``config.terms``:
    no explicit crosses.

    Parts: ``embedding`` (None without categorical fields), ``deep`` (None without
    ``deep_layers``), ``output``, and ``first_order``/``fm`` when asked for.
    ``body_only=True``: ``deep`` only, for a multi-task model (:meth:`body`, ``body_dim``).

    Shape:
        dense: (B, n_dense); categorical: (B, F) int64 -> logits (B,).

    Example:
        >>> import torch
        >>> schema = FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(4,),
        ...                        embedding_dim=2)
        >>> DNN(schema, DNNConfig(deep_layers=(8, 4)))(torch.rand(3, 1),
        ...                                            torch.tensor([[0], [1], [3]])).shape
        torch.Size([3])
    """

    config: DNNConfig

    def __init__(self, schema: FeatureSchema, config: DNNConfig | None = None, *,
                 task: str = "binary", body_only: bool = False) -> None:
        # a factorization machine by default decided here, kept resolved in self.config
        cfg = resolve_terms(config or DNNConfig(), num_fields=schema.num_fields, num_tasks=1)
        super().__init__(schema, cfg, task=task)
        self.embedding = None if body_only else make_embedding(
            schema, l2=cfg.embedding_l2, sparse_gradients=cfg.sparse_gradients)
        self.deep = MLP(schema.cross_width, cfg.deep_layers, dropout=cfg.dropout, norm=cfg.norm) \
            if cfg.deep_layers else None
        self.body_dim = self.deep.out_features if self.deep else schema.cross_width
        if body_only:
            return
        self.output = nn.Linear(self.body_dim, 1)
        self._add_terms(make_logit_terms(schema, cfg.terms,
                                         sparse_gradients=cfg.sparse_gradients))

    def body(self, dense: Tensor, embedded: Tensor | None) -> Tensor:
        """The deep network's features. Shape: (B, n_dense), (B, F, D) or None ->
        (B, body_dim)."""
        x0 = stack_embedded(dense, embedded)  # (B, N)
        return self.deep(x0) if self.deep is not None else x0

    def forward(self, dense: Tensor | None, categorical: Tensor | None = None) -> Tensor:
        dense, categorical = self.check_inputs(dense, categorical)
        x0 = stack_inputs(dense, categorical, self.embedding)  # (B, N)
        h = self.deep(x0) if self.deep is not None else x0
        return self._plus_terms(self.output(h).squeeze(1), dense, categorical)  # (B,)
