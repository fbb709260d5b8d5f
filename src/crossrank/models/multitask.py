"""Multi-task ranking: one tower per label over a shared crossrank body (shared bottom, MMoE).

A model trained on several labels (``--label click,conversion``) is a :class:`MultiTaskModel`
assembled from a family's body (DCN's cross and deep networks, DLRM's bottom MLP and
interaction, DNN's deep network: the family built with ``body_only=True``) and one shared
embedding table. Its forward pass returns one logit per task; the loss is
:func:`~crossrank.models.task.multitask_loss` (masked where a task's label is missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from crossrank.errors import ConfigError
from crossrank.layers.cross import CrossNet
from crossrank.layers.mlp import MLP
from crossrank.models.base import RankingModel
from crossrank.models.config import resolve_terms
from crossrank.models.parts import make_embedding, stack_embedded
from crossrank.models.protocol import FieldBlocks
from crossrank.models.schema import FeatureSchema
from crossrank.models.task import check_task


@runtime_checkable
class Body(Protocol):
    """A family built with ``body_only=True``: ``body(dense, embedded) -> (B, body_dim)``."""

    body_dim: int

    def body(self, dense: Tensor, embedded: Tensor | None) -> Tensor: ...

    def body_cross_input(self, dense: Tensor, embedded: Tensor | None) -> Tensor: ...

    def regularization(self) -> Tensor: ...

    def cross_network(self) -> CrossNet | None: ...

    def cross_field_blocks(self) -> FieldBlocks: ...

    def describe(self) -> str: ...


class MultiTaskModel(RankingModel):
    """T task towers over a shared body: ``logits[:, t] = tower_t(h_t)``.

    * ``shared_bottom``: ``h_t = body(dense, e)`` for every task, one body.
    * ``mmoe`` (Ma et al. 2018, "Modeling Task Relationships in Multi-task Learning with
      Multi-gate Mixture-of-Experts"): K expert bodies,
      ``h_t = sum_k softmax(G_t x0)_k body_k(dense, e)`` with ``x0 = [dense, e_1..e_F]`` the
      input embedding and ``G_t`` a linear gate per task.

    ``tower_t`` is an MLP of ``config.multitask.tower_layers`` ending in one logit. The
    embedding table is shared by every body and gate. Additive logit terms (first-order,
    FM) are single-task and refused.

    Parts: ``embedding`` (None without categorical fields), ``body`` (shared_bottom) or
    ``experts`` and ``gates`` (mmoe), ``towers``.

    Args:
        schema: the inputs; config: the family's config (``config.multitask`` read);
        bodies: the family bodies (one for shared_bottom, K for mmoe), each a :class:`Body`;
        tasks: one task per label ("binary" or "regression"), two or more.

    Shape:
        dense: (B, n_dense); categorical: (B, F) int64 -> logits (B, T).

    Example:
        >>> from crossrank.models import DCN, DCNConfig
        >>> s = FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(5,), embedding_dim=2)
        >>> cfg = DCNConfig(deep_layers=(4,))
        >>> m = MultiTaskModel(s, cfg, [DCN(s, cfg, body_only=True)], tasks=("binary", "binary"))
        >>> m(torch.rand(3, 1), torch.tensor([[0], [1], [4]])).shape
        torch.Size([3, 2])
    """

    def __init__(self, schema: FeatureSchema, config: Any, bodies: Sequence[nn.Module], *,
                 tasks: Sequence[str]) -> None:
        tasks = tuple(check_task(t) for t in tasks)
        if len(tasks) < 2:
            raise ConfigError(f"a multi-task model needs two or more tasks, got {list(tasks)}")
        # terms.fm_dim none means none here: the terms are single-task (an explicit one errs)
        config = resolve_terms(config, num_fields=schema.num_fields, num_tasks=len(tasks))
        super().__init__(schema, config, task=tasks[0])
        self.tasks = tasks
        mt = config.multitask
        terms = config.terms
        if terms.first_order or terms.fm_dim:
            raise ConfigError("terms.first_order and terms.fm_dim are single-task logit terms: "
                              "a multi-task model (several labels) takes none")
        want = 1 if mt.arch == "shared_bottom" else mt.num_experts
        if len(bodies) != want or not all(isinstance(b, Body) for b in bodies):
            raise ValueError(f"multitask.arch={mt.arch!r} needs {want} bodies, got "
                             f"{len(bodies)}")
        self.arch = mt.arch
        self.embedding = make_embedding(schema, l2=config.embedding_l2,
                                        sparse_gradients=config.sparse_gradients)
        if mt.arch == "shared_bottom":
            self.body = bodies[0]
        else:
            self.experts = nn.ModuleList(bodies)
            self.gates = nn.ModuleList(nn.Linear(schema.cross_width, mt.num_experts)
                                       for _ in tasks)
        dim = self._bodies()[0].body_dim
        self.towers = nn.ModuleList(MLP(dim, tuple(mt.tower_layers) + (1,), activate_last=False)
                                    for _ in tasks)

    def _bodies(self) -> list[Body]:
        parts = [self.body] if self.arch == "shared_bottom" else list(self.experts)
        return [b for b in parts if isinstance(b, Body)]

    def describe(self) -> str:
        experts = f", {len(self._bodies())} experts" if self.arch == "mmoe" else ""
        return (f"{self._bodies()[0].describe()} multi-task ({self.arch}{experts}, "
                f"{len(self.tasks)} tasks)")

    def regularization(self) -> Tensor:
        total = torch.zeros((), device=self._device(), dtype=self._float_dtype())
        for body in self._bodies():
            total = total + body.regularization()
        return total

    def cross_network(self) -> CrossNet | None:
        """The shared body's cross network (shared_bottom); None for mmoe, whose K experts
        each have one and no single network explains the model."""
        return self._bodies()[0].cross_network() if self.arch == "shared_bottom" else None

    def cross_field_blocks(self) -> FieldBlocks:
        if self.cross_network() is None:
            raise self._no_cross_network()
        return self._bodies()[0].cross_field_blocks()

    def cross_input(self, dense: Tensor | None, categorical: Tensor | None) -> Tensor:
        if self.cross_network() is None:
            raise self._no_cross_network()
        dense, categorical = self.check_inputs(dense, categorical)
        return self._bodies()[0].body_cross_input(dense, self._embed(categorical))

    def _embed(self, categorical: Tensor | None) -> Tensor | None:
        if self.embedding is None or categorical is None:
            return None
        return self.embedding(categorical)  # (B, F, D)

    def forward(self, dense: Tensor | None, categorical: Tensor | None = None) -> Tensor:
        dense, categorical = self.check_inputs(dense, categorical)
        embedded = self._embed(categorical)
        if self.arch == "shared_bottom":
            shared = self._bodies()[0].body(dense, embedded)  # (B, H)
            features = [shared] * len(self.tasks)
        else:
            outs = torch.stack([e.body(dense, embedded) for e in self._bodies()],
                               dim=1)  # (B, K, H)
            x0 = stack_embedded(dense, embedded)  # (B, N)
            features = [(torch.softmax(gate(x0), dim=1).unsqueeze(2) * outs).sum(dim=1)
                        for gate in self.gates]  # each (B, K, 1) * (B, K, H) -> (B, H)
        return torch.stack([tower(h).squeeze(1) for tower, h in zip(self.towers, features)],
                           dim=1)  # (B, T)


def build_multitask(build: Any, schema: FeatureSchema, config: Any,
                    tasks: Sequence[str]) -> MultiTaskModel:
    """A :class:`MultiTaskModel` over the family ``build`` (a registered constructor taking
    ``body_only=True``): one body for shared_bottom, ``num_experts`` for mmoe."""
    mt = config.multitask
    count = 1 if mt.arch == "shared_bottom" else mt.num_experts
    bodies = [build(schema, config, task=tasks[0], body_only=True) for _ in range(count)]
    return MultiTaskModel(schema, config, bodies, tasks=tasks)
