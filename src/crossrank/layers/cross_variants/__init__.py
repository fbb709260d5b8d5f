"""The cross-layer variants ``CrossNet`` is assembled from, one per file.

``FullRankCross`` (DCN-V2), ``LowRankCross`` (``W = U V``), ``MixtureCross`` (DCN-Mix) and
``VectorCross`` (DCN v1), each implementing ``CrossVariant`` (see ``base`` for why a variant
computes with weights that its ``CrossNet`` holds).
"""

from crossrank.layers.cross_variants.base import CrossVariant, Weights
from crossrank.layers.cross_variants.full_rank import FullRankCross
from crossrank.layers.cross_variants.low_rank import LowRankCross
from crossrank.layers.cross_variants.mixture import MixtureCross
from crossrank.layers.cross_variants.vector import VectorCross

__all__ = ["CrossVariant", "FullRankCross", "LowRankCross", "MixtureCross", "VectorCross",
           "Weights"]
