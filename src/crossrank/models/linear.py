"""LinearModel: logistic or linear regression over crossrank's features, a family of its own.

On a few thousand rows or fewer a tuned logistic regression beats a network with embeddings
(RESULTS.md, "small data"): the network's crosses need data before they pay. This family is
that regression, trained to convergence along a regularization path
(:mod:`crossrank.train.linear_path`), so that a small data set gets the model a careful
analyst would fit, with the same files, commands, export and serving as any other family.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.layers.first_order import FirstOrder
from crossrank.models.base import RankingModel
from crossrank.models.config import LinearConfig
from crossrank.models.parts import schema_bags
from crossrank.models.schema import FeatureSchema


class LinearModel(RankingModel):
    """``logit = w_d . (dense - mean) / scale + sum_f w_f[id_f] + b``.

    Parts: ``first_order`` (the weights, :class:`~crossrank.layers.FirstOrder`: a scalar per
    categorical value, multi-valued fields pooled like their embeddings, and one per dense
    feature) and ``intercept`` (its ``bias``). The dense features are standardized by the buffers
    ``dense_mean`` and ``dense_scale``, which the path solver sets from the training rows
    before its first point (``scaled`` says whether it has): an L2 penalty is only fair to
    features of one scale. The embedding dim of the schema is not used.

    Shape:
        dense: (B, n_dense) float; categorical: (B, F) int64 or None -> logits (B,).

    Example:
        >>> import torch
        >>> schema = FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(4,))
        >>> LinearModel(schema)(torch.rand(3, 1), torch.tensor([[0], [1], [3]]))
        tensor([0., 0., 0.], grad_fn=<AddBackward0>)
        >>> sorted(LinearModel(schema).named_parts())
        ['first_order', 'intercept']
    """

    config: LinearConfig
    dense_mean: Tensor  # buffers (n_dense,), (n_dense,), () bool
    dense_scale: Tensor
    scaled: Tensor
    solves_by_path = True  # the Trainer runs crossrank.train.linear_path, not mini-batches

    def __init__(self, schema: FeatureSchema, config: LinearConfig | None = None, *,
                 task: str = "binary") -> None:
        super().__init__(schema, config or LinearConfig(), task=task)
        # no penalty of its own: the path solver's L2 covers every weight but the intercept
        self.first_order = FirstOrder(schema.num_dense, schema.vocab_sizes, l2=0.0,
                                      sparse=False, field_names=schema.categorical,
                                      bags=schema_bags(schema))
        self.intercept = Intercept()
        self.register_buffer("dense_mean", torch.zeros(schema.num_dense))
        self.register_buffer("dense_scale", torch.ones(schema.num_dense))
        self.register_buffer("scaled", torch.zeros((), dtype=torch.bool))

    def forward(self, dense: Tensor | None, categorical: Tensor | None = None) -> Tensor:
        dense, categorical = self.check_inputs(dense, categorical)
        standard = (dense - self.dense_mean.to(dense.dtype)) / self.dense_scale.to(dense.dtype)
        return self.first_order(standard, categorical) + self.intercept.bias.to(standard.dtype)

    def weights(self) -> list[Tensor]:
        """The penalized weights: every one but the intercept."""
        return list(self.first_order.parameters())

    def set_scaling(self, mean: Tensor, scale: Tensor) -> None:
        """Standardize the dense features by ``mean`` and ``scale`` (both (n_dense,); a zero
        scale, a constant feature, becomes 1)."""
        self.dense_mean.copy_(mean)
        self.dense_scale.copy_(torch.where(scale > 0, scale, torch.ones_like(scale)))
        self.scaled.fill_(True)

    def describe(self) -> str:
        return "linear"


class Intercept(nn.Module):
    """The linear model's intercept, a part of its own (every parameter belongs to a part)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
