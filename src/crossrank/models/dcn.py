"""DCN: embedding-and-stacking, a cross network and a deep network (stacked or parallel)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.layers.cross import CrossNet
from crossrank.layers.mlp import MLP
from crossrank.models.base import RankingModel
from crossrank.models.config import DCNConfig, resolve_terms
from crossrank.models.parts import (
    make_cross_net,
    make_embedding,
    make_logit_terms,
    stack_embedded,
    stack_inputs,
)
from crossrank.models.protocol import FieldBlocks
from crossrank.models.schema import FeatureSchema


class DCN(RankingModel):
    """Deep & Cross Network over ``x0 = [dense, e_1, ..., e_F]`` (N = n_dense + F*D).

    * "stacked": ``logit = w^T deep(cross(x0)) + c``
    * "parallel": ``logit = w^T [cross(x0), deep(x0)] + c`` (the combination layer)
    * "cross_only": ``logit = w^T cross(x0) + c``

    plus the additive terms of ``config.terms`` (first-order, factorization machine). Any
    cross network of ``config.cross``: full rank, low rank (``rank``), DCN-Mix
    (``num_experts``), DCN v1 (``kind="vector"``).

    Parts: ``embedding`` (None without categorical fields), ``cross``, ``deep`` (None for
    "cross_only" or no ``deep_layers``), ``output``, and ``first_order``/``fm`` when asked for.

    ``body_only=True`` builds the body a multi-task model shares (``cross`` and ``deep``, no
    embedding, output or terms): :meth:`body` maps looked-up embeddings to the features the
    output layer would read, ``body_dim`` wide.

    Shape:
        dense: (B, n_dense); categorical: (B, F) int64 -> logits (B,).

    Example:
        >>> from crossrank.models import CrossConfig
        >>> schema = FeatureSchema(dense=("x1", "x2"), categorical=("u",), vocab_sizes=(10,),
        ...                        embedding_dim=4)
        >>> model = DCN(schema, DCNConfig(cross=CrossConfig(rank=2), deep_layers=(8,)))
        >>> model(torch.rand(1, 2), torch.tensor([[3]])).shape
        torch.Size([1])
    """

    config: DCNConfig

    def __init__(self, schema: FeatureSchema, config: DCNConfig | None = None, *,
                 task: str = "binary", body_only: bool = False) -> None:
        # a factorization machine by default decided here, kept resolved in self.config
        cfg = resolve_terms(config or DCNConfig(), num_fields=schema.num_fields, num_tasks=1)
        super().__init__(schema, cfg, task=task)
        n = schema.cross_width
        self.embedding = None if body_only else make_embedding(
            schema, l2=cfg.embedding_l2, sparse_gradients=cfg.sparse_gradients)
        self.cross = make_cross_net(n, cfg.cross)
        self.deep: MLP | None = None
        if cfg.structure != "cross_only" and cfg.deep_layers:
            self.deep = MLP(n, cfg.deep_layers, dropout=cfg.dropout, norm=cfg.norm)
        if self.deep is None:
            head_in = n
        elif cfg.structure == "stacked":
            head_in = self.deep.out_features
        else:
            head_in = n + self.deep.out_features
        self.body_dim = head_in
        if body_only:
            return
        self.output = nn.Linear(head_in, 1)
        self._add_terms(make_logit_terms(schema, cfg.terms,
                                         sparse_gradients=cfg.sparse_gradients))

    def describe(self) -> str:
        return f"DCN {self.config.structure}"

    def cross_network(self) -> CrossNet:
        return self.cross

    def cross_field_blocks(self) -> FieldBlocks:
        """Field blocks of the cross network's input ``[dense, e_1..e_F]``."""
        return self.schema.field_blocks()

    def cross_input(self, dense: Tensor | None, categorical: Tensor | None) -> Tensor:
        """x0, the cross network's input. Shape: (B, N)."""
        dense, categorical = self.check_inputs(dense, categorical)
        return stack_inputs(dense, categorical, self.embedding)

    def body_cross_input(self, dense: Tensor, embedded: Tensor | None) -> Tensor:
        return stack_embedded(dense, embedded)  # (B, N)

    def body(self, dense: Tensor, embedded: Tensor | None) -> Tensor:
        """The features the output layer reads. Shape: (B, n_dense), (B, F, D) or None ->
        (B, body_dim)."""
        return self._features(stack_embedded(dense, embedded))

    def _features(self, x0: Tensor) -> Tensor:
        crossed = self.cross(x0)  # (B, N)
        if self.deep is None:
            return crossed
        if self.config.structure == "stacked":
            return self.deep(crossed)
        return torch.cat([crossed, self.deep(x0)], dim=1)  # (B, N + H)

    def forward(self, dense: Tensor | None, categorical: Tensor | None = None) -> Tensor:
        dense, categorical = self.check_inputs(dense, categorical)
        x0 = stack_inputs(dense, categorical, self.embedding)  # (B, N)
        logits = self.output(self._features(x0)).squeeze(1)  # (B,)
        return self._plus_terms(logits, dense, categorical)

