"""crossrank: ranking and CTR models that learn explicit feature crosses (DCN, DCN-V2,
DCN-Mix, DLRM), with a data pipeline, a trainer, a CLI and model-understanding tools."""

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
