"""crossrank: ranking and CTR models that learn explicit feature crosses (DCN, DCN-V2,
DCN-Mix, DLRM), with a data pipeline, a trainer, a CLI and model-understanding tools.

The layers below are imported on first use (PEP 562), not by ``import crossrank``: the
scoring path (:mod:`crossrank.serving`) runs where torch is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# before the process's first matrix product: MKL's products the same on any thread count
from crossrank import reproducible as _reproducible  # noqa: F401

if TYPE_CHECKING:
    from crossrank.layers import (
        MLP,
        CrossNet,
        DotInteraction,
        FactorizationMachine,
        FeatureCross,
        FieldEmbedding,
        ProjectionInteraction,
    )

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "CrossNet",
    "DotInteraction",
    "FactorizationMachine",
    "FeatureCross",
    "FieldEmbedding",
    "ProjectionInteraction",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from crossrank import layers

        return getattr(layers, name)
    raise AttributeError(f"module 'crossrank' has no attribute {name!r}")
