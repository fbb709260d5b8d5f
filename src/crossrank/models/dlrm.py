"""DLRM: bottom MLP, embeddings, a feature interaction part, top MLP (TorchRec's arches)."""

from __future__ import annotations

from torch import Tensor

from crossrank.errors import ConfigError
from crossrank.layers.cross import CrossNet
from crossrank.layers.mlp import MLP
from crossrank.models.base import RankingModel
from crossrank.models.config import DLRMConfig, resolve_terms
from crossrank.models.interaction import CrossInteraction, make_interaction
from crossrank.models.parts import make_embedding, make_logit_terms
from crossrank.models.protocol import FieldBlocks
from crossrank.models.schema import FeatureSchema


class DLRM(RankingModel):
    """DLRM with TorchRec's three interaction architectures.

    ``d = bottom(dense)`` (B, D) (DenseArch); ``e = embedding(categorical)`` (B, F, D)
    (SparseArch); ``z = interaction(d, e)`` (InteractionArch, a part built by
    :func:`~crossrank.models.interaction.make_interaction`):

    * "dot": ``[d, triu(T T^T)]`` with ``T = [d; e]``, width D + (F+1)F/2;
    * "dcn": the cross network of ``config.cross`` (any variant, DCN-Mix too) over
      ``[d, e_1..e_F]`` flattened, width (F+1)D;
    * "projection": ``[d, flat(Y Z)]``, width D + F1*F2;

    and ``logit = top(z)`` (OverArch) plus the additive terms of ``config.terms``.
    ``body_only=True`` builds ``bottom`` and ``interaction`` only, for a multi-task model:
    :meth:`body` gives ``z`` (``body_dim`` wide) from looked-up embeddings.

    Shape:
        dense: (B, n_dense); categorical: (B, F) int64 -> logits (B,).

    Example:
        >>> import torch
        >>> from crossrank.models import CrossConfig
        >>> schema = FeatureSchema(dense=("i1", "i2"), categorical=("c1", "c2"),
        ...                        vocab_sizes=(5, 7), embedding_dim=4)
        >>> cfg = DLRMConfig(bottom_layers=(8, 4), top_layers=(8,), interaction="dcn",
        ...                  cross=CrossConfig(rank=2, num_experts=2))
        >>> DLRM(schema, cfg)(torch.rand(1, 2), torch.tensor([[1, 6]])).shape
        torch.Size([1])
    """

    config: DLRMConfig

    def __init__(self, schema: FeatureSchema, config: DLRMConfig | None = None, *,
                 task: str = "binary", body_only: bool = False) -> None:
        # DLRM takes no factorization machine by default: terms.fm_dim none resolves to 0
        cfg = resolve_terms(config or DLRMConfig(), num_fields=schema.num_fields, num_tasks=1,
                            fm_dim=0)
        super().__init__(schema, cfg, task=task)
        d, f = schema.embedding_dim, schema.num_fields  # categorical and multi-valued
        if not schema.num_dense or not f:
            raise ConfigError(f"DLRM needs dense and categorical fields, got {schema.num_dense} "
                              f"dense and {f} categorical")
        if not cfg.bottom_layers or cfg.bottom_layers[-1] != d:
            raise ConfigError(f"bottom_layers must end in embedding_dim={d}, "
                              f"got {cfg.bottom_layers!r}")
        self.bottom = MLP(schema.num_dense, cfg.bottom_layers)
        self.embedding = None if body_only else make_embedding(
            schema, l2=cfg.embedding_l2, sparse_gradients=cfg.sparse_gradients)
        self.interaction = make_interaction(cfg, num_categorical=f, embedding_dim=d)
        self.body_dim = self.interaction.output_dim
        if body_only:
            return
        self.top = MLP(self.interaction.output_dim, tuple(cfg.top_layers) + (1,),
                       activate_last=False)
        self._add_terms(make_logit_terms(schema, cfg.terms,
                                         sparse_gradients=cfg.sparse_gradients))

    def describe(self) -> str:
        kind = "DCN" if self.config.interaction == "dcn" else self.config.interaction
        return f"DLRM ({kind} interaction)"

    def cross_network(self) -> CrossNet | None:
        """The cross network of ``interaction="dcn"``, else None."""
        return self.interaction.cross if isinstance(self.interaction, CrossInteraction) else None

    def cross_field_blocks(self) -> FieldBlocks:
        """Field blocks of the DCN interaction's input ``[bottom(dense), e_1..e_F]``."""
        if self.cross_network() is None:
            raise self._no_cross_network()
        d = self.schema.embedding_dim
        names = ("dense",) + self.schema.field_names
        return [(name, i * d, (i + 1) * d) for i, name in enumerate(names)]

    def cross_input(self, dense: Tensor | None, categorical: Tensor | None) -> Tensor:
        """The DCN interaction's input ``[bottom(dense), e_1..e_F]`` flattened: (B, (F+1)D)."""
        if not isinstance(self.interaction, CrossInteraction):
            raise self._no_cross_network()
        return self.interaction.flatten(*self._arches(*self.check_inputs(dense, categorical)))

    def _arches(self, dense: Tensor, categorical: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.embedding is None or categorical is None:  # unreachable: checked in __init__
            raise ValueError("DLRM needs categorical inputs")
        return self.bottom(dense), self.embedding(categorical)  # (B, D), (B, F, D)

    def body_cross_input(self, dense: Tensor, embedded: Tensor | None) -> Tensor:
        if not isinstance(self.interaction, CrossInteraction) or embedded is None:
            raise self._no_cross_network()
        return self.interaction.flatten(self.bottom(dense), embedded)  # (B, (F+1)D)

    def body(self, dense: Tensor, embedded: Tensor | None) -> Tensor:
        """The interaction's output z. Shape: (B, n_dense), (B, F, D) -> (B, body_dim)."""
        if embedded is None:  # unreachable: checked in __init__
            raise ValueError("DLRM needs categorical inputs")
        return self.interaction(self.bottom(dense), embedded)  # (B, width)

    def forward(self, dense: Tensor | None, categorical: Tensor | None = None) -> Tensor:
        dense, categorical = self.check_inputs(dense, categorical)
        z = self.interaction(*self._arches(dense, categorical))  # (B, width)
        return self._plus_terms(self.top(z).squeeze(1), dense, categorical)  # (B,)
