"""DLRM's interaction parts (TorchRec's InteractionArch): ``part(d, e) -> (B, output_dim)``.

Every part takes the bottom MLP's output ``d`` (B, D) and the embeddings ``e`` (B, F, D) and
has an ``output_dim`` property, the width the top MLP reads (one convention for all three):

* :class:`DotInteractionArch`: ``[d, triu(T T^T)]`` with ``T = [d; e]``.
* :class:`CrossInteraction`: a cross network (any variant, DCN-Mix included) over
  ``[d, e_1, ..., e_F]`` flattened.
* :class:`~crossrank.layers.ProjectionInteraction`: ``[d, flat(Y Z)]``; the layer itself.

:func:`make_interaction` builds the part a ``DLRMConfig`` names. The parts keep the state_dict
keys DLRM has always written (``interaction.u``, ``interaction.branch1.*``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from crossrank.layers.interaction import DotInteraction, ProjectionInteraction
from crossrank.models.config import CrossConfig, DLRMConfig
from crossrank.models.parts import make_cross_net


class DotInteractionArch(nn.Module):
    """:class:`~crossrank.layers.DotInteraction` for F fields of dim D, with its ``output_dim``.

    Shape:
        dense: (B, D); embedded: (B, F, D) -> (B, D + (F+1)F/2), the diagonal too when
        ``self_interaction``.

    Example:
        >>> DotInteractionArch(3, 4).output_dim
        10
    """

    def __init__(self, num_categorical: int, embedding_dim: int, *,
                 self_interaction: bool = False, backend: str = "auto") -> None:
        super().__init__()
        self.dot = DotInteraction(self_interaction=self_interaction, backend=backend)
        self._output_dim = DotInteraction.output_dim(num_categorical, embedding_dim,
                                                     self_interaction=self_interaction)

    @property
    def output_dim(self) -> int:
        return self._output_dim

    def forward(self, dense: Tensor, embedded: Tensor) -> Tensor:
        return self.dot(dense, embedded)  # (B, output_dim)


class CrossInteraction(nn.Module):
    """DLRM's DCN interaction: a cross network over ``x0 = [d, e_1, ..., e_F]`` flattened.

    The cross network is the child ``cross``, but the state_dict shows its parameters directly
    under this part (``interaction.u``, not ``interaction.cross.u``): the names every DLRM
    checkpoint has used, read and written both ways by two state_dict hooks.

    Shape:
        dense: (B, D); embedded: (B, F, D) -> (B, (F+1)D).

    Example:
        >>> part = CrossInteraction(2, 4, CrossConfig(num_layers=1, rank=2))
        >>> part.output_dim, sorted(part.state_dict())
        (12, ['bias_param', 'u', 'v'])
    """

    def __init__(self, num_categorical: int, embedding_dim: int, config: CrossConfig) -> None:
        super().__init__()
        self.cross = make_cross_net((num_categorical + 1) * embedding_dim, config)
        self.register_state_dict_post_hook(_drop_cross_level)
        self.register_load_state_dict_pre_hook(_add_cross_level)

    @property
    def output_dim(self) -> int:
        return self.cross.in_features

    def flatten(self, dense: Tensor, embedded: Tensor) -> Tensor:
        """The cross network's input x0. Shape: (B, D), (B, F, D) -> (B, (F+1)D)."""
        stacked = torch.cat([dense.unsqueeze(1), embedded], dim=1)  # (B, F+1, D)
        return stacked.reshape(dense.shape[0], self.output_dim)  # (B, (F+1)D)

    def forward(self, dense: Tensor, embedded: Tensor) -> Tensor:
        return self.cross(self.flatten(dense, embedded))  # (B, (F+1)D)

    def regularization(self) -> Tensor:
        return self.cross.regularization()


def _drop_cross_level(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                      local_metadata: Any) -> None:
    inner = prefix + "cross."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)


def _add_cross_level(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                     *args: Any) -> None:
    inner = prefix + "cross."
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]:
        state_dict[inner + key[len(prefix):]] = state_dict.pop(key)


InteractionPart = DotInteractionArch | CrossInteraction | ProjectionInteraction


def make_interaction(config: DLRMConfig, *, num_categorical: int,
                     embedding_dim: int) -> InteractionPart:
    """The interaction part ``config.interaction`` names, for F fields of dim D (each an
    :class:`~crossrank.models.protocol.InteractionArch`).

    Example:
        >>> make_interaction(DLRMConfig(interaction="dcn"), num_categorical=2,
        ...                  embedding_dim=4).output_dim
        12
    """
    f, d = num_categorical, embedding_dim
    if config.interaction == "dot":
        return DotInteractionArch(f, d, self_interaction=config.self_interaction,
                                  backend=config.backend)
    if config.interaction == "dcn":
        return CrossInteraction(f, d, config.cross)
    return ProjectionInteraction(f, d, branch1_sizes=config.projection_branch1,
                                 branch2_sizes=config.projection_branch2)
