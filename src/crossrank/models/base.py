"""What every ranking model shares: the task, input checks, named parts and additive terms.

Deliberately small: models compute logits and nothing else (no optimizer, no fit, no device
policy); the trainer owns those. A model's direct children are its named parts (TorchRec's
arches: ``embedding``, ``cross``, ``deep``, ``output``, ``bottom``, ``interaction``, ``top``,
and the additive terms ``first_order``, ``fm``); the trainer reads them to scale learning rates
by part, and the penalty of every part that declares one
(:class:`~crossrank.models.protocol.Regularized`) is summed into ``regularization()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from crossrank.errors import ConfigError
from crossrank.layers.cross import CrossNet
from crossrank.models.protocol import FieldBlocks, Regularized, no_cross_network
from crossrank.models.schema import FeatureSchema
from crossrank.models.task import check_task


class RankingModel(nn.Module):
    """Base of the models: ``forward(dense, categorical) -> logits (B,)``.

    Implements :class:`~crossrank.models.protocol.CrossModel` for a model without a cross
    network; DCN and DLRM override its cross methods.

    Args:
        schema: the inputs.
        config: the family's config dataclass (kept as ``self.config``, saved in the spec).
        task: "binary" or "regression": the loss and prediction the logits are for.

    Shape:
        dense: (B, n_dense) float; categorical: (B, F) int64 (None when F = 0)
        -> logits (B,).
    """

    def __init__(self, schema: FeatureSchema, config: Any, *, task: str) -> None:
        super().__init__()
        self.schema, self.config, self.task = schema, config, check_task(task)
        # one task per logit column: (task,) here, one per label for a multi-task model
        self.tasks: tuple[str, ...] = (self.task,)
        self.model_name = type(self).__name__.lower()  # the registry's name when built by it
        self._term_names: tuple[str, ...] = ()

    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def named_parts(self) -> dict[str, nn.Module]:
        """The model's parts by name: its direct children, additive terms included."""
        return dict(self.named_children())

    def additive_terms(self) -> dict[str, nn.Module]:
        """The additive logit terms by part name, in the order they are summed."""
        return {name: self.get_submodule(name) for name in self._term_names}

    def regularization(self) -> Tensor:
        """Sum of the parts' declared penalties (cross kernels' L2, first-order L2); the
        embeddings' L2 acts in the backward pass."""
        total = torch.zeros((), device=self._device(), dtype=self._float_dtype())
        for part in self.named_parts().values():
            if isinstance(part, Regularized):
                total = total + part.regularization()
        return total

    def describe(self) -> str:
        """A short description for titles."""
        return type(self).__name__

    def cross_network(self) -> CrossNet | None:
        """The cross network, or None (this base: none)."""
        return None

    def cross_field_blocks(self) -> FieldBlocks:
        raise self._no_cross_network()

    def cross_input(self, dense: Tensor | None, categorical: Tensor | None) -> Tensor:
        raise self._no_cross_network()

    def body_cross_input(self, dense: Tensor, embedded: Tensor | None) -> Tensor:
        """x0 of the cross network from looked-up embeddings (a multi-task model's body)."""
        raise self._no_cross_network()

    def _no_cross_network(self) -> ConfigError:
        return no_cross_network(self.model_name, self.describe())

    def _add_terms(self, terms: Mapping[str, nn.Module]) -> None:
        """Register additive logit terms as parts under their own names (``first_order.*``)."""
        for name, term in terms.items():
            self.add_module(name, term)
        self._term_names = self._term_names + tuple(terms)

    def _plus_terms(self, logits: Tensor, dense: Tensor, categorical: Tensor | None) -> Tensor:
        for term in self.additive_terms().values():
            logits = logits + term(dense, categorical)  # (B,)
        return logits

    def check_inputs(self, dense: Tensor | None,
                     categorical: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The inputs checked against the schema; ``dense`` None becomes a (B, 0) tensor."""
        s = self.schema
        if dense is None:
            if s.num_dense:
                raise ValueError(f"dense must be a (B, {s.num_dense}) tensor, got None")
        elif not isinstance(dense, Tensor) or not torch.is_floating_point(dense):
            raise TypeError(f"dense must be a floating-point tensor, got "
                            f"{getattr(dense, 'dtype', type(dense).__name__)}")
        elif dense.dim() != 2 or dense.shape[1] != s.num_dense:
            raise ValueError(f"dense must have shape (B, {s.num_dense}), got {tuple(dense.shape)}")
        if s.categorical_width == 0:
            if categorical is not None and categorical.numel():
                raise ValueError(f"this model has no categorical fields, got categorical of "
                                 f"shape {tuple(categorical.shape)}")
            categorical = None
        elif categorical is None:
            raise ValueError(f"categorical must be a (B, {s.categorical_width}) int64 tensor, "
                             "got None")
        if dense is None:
            if categorical is None:  # unreachable: a schema has at least one field
                raise ValueError("dense and categorical are both None")
            dense = torch.zeros(categorical.shape[0], 0, device=categorical.device,
                                dtype=self._float_dtype())
        if categorical is not None and categorical.dim() == 2 \
                and categorical.shape[0] != dense.shape[0]:
            raise ValueError(f"dense and categorical must share the batch size, got "
                             f"{dense.shape[0]} and {categorical.shape[0]}")
        return dense, categorical

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _float_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype
