"""Neural-network layers: cross networks, DLRM interactions, the MLP and the embeddings."""

from crossrank.layers.bag_embedding import BagEmbedding, BagFields
from crossrank.layers.cross import CrossNet
from crossrank.layers.embedding import FieldEmbedding
from crossrank.layers.factorization import FactorizationMachine
from crossrank.layers.feature_cross import FeatureCross
from crossrank.layers.first_order import FirstOrder
from crossrank.layers.interaction import DotInteraction, ProjectionInteraction
from crossrank.layers.mlp import MLP

__all__ = ["MLP", "BagEmbedding", "BagFields", "CrossNet", "DotInteraction",
           "FactorizationMachine", "FeatureCross", "FieldEmbedding", "FirstOrder",
           "ProjectionInteraction"]
