"""Factories of the parts every family shares, built from the typed config sections.

* :func:`make_embedding`: the SparseArch (one fused table for the categorical fields).
* :func:`make_cross_net`: a :class:`~crossrank.layers.CrossNet` from a ``CrossConfig``.
* :func:`make_logit_terms`: the additive logit terms of a ``LogitTerms`` section.
* :func:`stack_inputs`: DCN's embedding-and-stacking, ``x0 = [dense, e_1, ..., e_F]``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.errors import ConfigError
from crossrank.layers.bag_embedding import BagFields, bag_fields
from crossrank.layers.cross import CrossNet
from crossrank.layers.embedding import FieldEmbedding
from crossrank.layers.factorization import FactorizationMachine
from crossrank.layers.first_order import FirstOrder
from crossrank.models.config import CrossConfig, LogitTerms
from crossrank.models.schema import FeatureSchema


def schema_bags(schema: FeatureSchema) -> BagFields | None:
    """The schema's multi-valued fields as the embedding layers take them, or None."""
    return bag_fields(schema.multi_valued_sizes, schema.multi_valued_widths, schema.pooling,
                      schema.multi_valued)


def make_embedding(schema: FeatureSchema, *, l2: float,
                   sparse_gradients: bool) -> FieldEmbedding | None:
    """The model's embedding layer (its SparseArch), or None for a dense-only schema."""
    if not schema.num_fields:
        return None
    return FieldEmbedding(schema.vocab_sizes, schema.embedding_dim, l2=l2,
                          sparse=sparse_gradients, field_names=schema.categorical,
                          bags=schema_bags(schema))


def make_cross_net(in_features: int, config: CrossConfig) -> CrossNet:
    """A cross network over ``in_features`` = N inputs.

    Example:
        >>> make_cross_net(6, CrossConfig(num_layers=2, rank=3)).u.shape
        torch.Size([2, 6, 3])
    """
    c = config
    return CrossNet(in_features, c.num_layers, rank=c.rank, num_experts=c.num_experts,
                    diag_scale=c.diag_scale, use_bias=c.use_bias, activation=c.activation,
                    kind=c.kind, kernel_l2=c.l2, backend=c.backend)


def make_logit_terms(schema: FeatureSchema, terms: LogitTerms, *,
                     sparse_gradients: bool) -> dict[str, nn.Module]:
    """The additive logit terms ``terms`` asks for, by part name (``first_order``, ``fm``).

    Example:
        >>> s = FeatureSchema(dense=("a",), categorical=("u", "v"), vocab_sizes=(3, 4))
        >>> sorted(make_logit_terms(s, LogitTerms(first_order=True, fm_dim=2),
        ...                         sparse_gradients=False))
        ['first_order', 'fm']
    """
    out: dict[str, nn.Module] = {}
    if terms.first_order:
        out["first_order"] = FirstOrder(schema.num_dense, schema.vocab_sizes,
                                        l2=terms.first_order_l2, sparse=sparse_gradients,
                                        field_names=schema.categorical, bags=schema_bags(schema))
    if terms.fm_dim:
        if schema.num_fields < 2:
            raise ConfigError(f"terms.fm_dim={terms.fm_dim} (a factorization machine) needs at "
                              f"least 2 categorical fields (multi-valued ones count), the schema has "
                              f"{schema.num_fields}")
        out["fm"] = FactorizationMachine(schema.vocab_sizes, terms.fm_dim, l2=terms.fm_l2,
                                         sparse=sparse_gradients, field_names=schema.categorical,
                                         bags=schema_bags(schema))
    return out


def stack_embedded(dense: Tensor, embedded: Tensor | None) -> Tensor:
    """``x0 = [dense, e_1, ..., e_F]`` from looked-up embeddings (None: dense only).

    Shape:
        dense: (B, n_dense); embedded: (B, F, D) -> (B, n_dense + F*D).
    """
    if embedded is None:
        return dense
    flat = embedded.reshape(embedded.shape[0], embedded.shape[1] * embedded.shape[2])  # (B, F*D)
    return torch.cat([dense, flat], dim=1)  # (B, n_dense + F*D)


def stack_inputs(dense: Tensor, categorical: Tensor | None,
                 embedding: FieldEmbedding | None) -> Tensor:
    """DCN's embedding-and-stacking layer: ``x0 = [dense, e_1, ..., e_F]``.

    Shape:
        dense: (B, n_dense); categorical: (B, F + W) -> (B, n_dense + (F+M)*D), M multi-valued
        fields of padded widths summing to W.
    """
    if embedding is None or categorical is None:
        return dense
    emb = embedding(categorical)  # (B, F, D)
    flat = emb.reshape(emb.shape[0], emb.shape[1] * emb.shape[2])  # (B, F*D); B may be 0
    return torch.cat([dense, flat], dim=1)  # (B, n_dense + F*D)
