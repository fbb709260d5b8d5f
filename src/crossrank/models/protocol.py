"""What consumers may read from a model and its parts: declared here, never guessed.

* :class:`Regularized`: a part with an explicit penalty (cross networks, the first-order term);
  :meth:`~crossrank.models.RankingModel.regularization` sums its parts' penalties.
* :class:`LogitTerm`: an additive term of the logit, ``term(dense, categorical) -> (B,)``.
* :class:`InteractionArch`: a DLRM feature interaction, ``part(d, e) -> (B, output_dim)``.
* :class:`CrossModel`: what ``crossrank.explain`` reads from a model: its cross network (or
  None), the field blocks and the rows ``x0`` of that network's input, its additive terms and a
  short description. Every :class:`~crossrank.models.RankingModel` implements it; a model
  without a cross network returns None from ``cross_network()`` and says so in one line from
  ``cross_field_blocks()`` and ``cross_input()``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from crossrank.errors import ConfigError
from crossrank.layers.cross import CrossNet

FieldBlocks = list[tuple[str, int, int]]


def no_cross_network(model_name: str, description: str) -> ConfigError:
    """The one-line error of a model without a cross network asked to explain its crosses.

    Example:
        >>> print(no_cross_network("dnn", "DNN"))  # doctest: +ELLIPSIS
        model 'dnn' has no cross network to explain (DNN); field-pair importance reads ...
    """
    return ConfigError(f"model {model_name!r} has no cross network to explain ({description}); "
                       "field-pair importance reads cross-layer weights: it needs a DCN, a DLRM "
                       "with interaction='dcn' or a CrossNet")


@runtime_checkable
class Regularized(Protocol):
    """A part whose penalty is added to the training loss."""

    def regularization(self) -> Tensor:
        """The penalty, a scalar tensor (zero when the part has no L2)."""
        ...


@runtime_checkable
class LogitTerm(Protocol):
    """An additive logit term. Shape: dense (B, n_dense), categorical (B, F) or None -> (B,)."""

    def __call__(self, dense: Tensor, categorical: Tensor | None) -> Tensor: ...


@runtime_checkable
class InteractionArch(Protocol):
    """DLRM's interaction. Shape: d (B, D), e (B, F, D) -> (B, output_dim)."""

    @property
    def output_dim(self) -> int: ...

    def __call__(self, dense: Tensor, embedded: Tensor) -> Tensor: ...


@runtime_checkable
class CrossModel(Protocol):
    """The model-understanding interface (see the module doc)."""

    model_name: str

    def cross_network(self) -> CrossNet | None:
        """The cross network whose weights explain the model's crosses, or None."""
        ...

    def cross_field_blocks(self) -> FieldBlocks:
        """``(name, start, stop)`` column ranges of each field in the cross network's input."""
        ...

    def cross_input(self, dense: Tensor | None, categorical: Tensor | None) -> Tensor:
        """The cross network's input rows x0. Shape: (B, N)."""
        ...

    def additive_terms(self) -> dict[str, nn.Module]:
        """The additive logit terms by part name (``first_order``, ``fm``), maybe empty."""
        ...

    def describe(self) -> str:
        """A short description for titles, e.g. ``DCN stacked``."""
        ...
