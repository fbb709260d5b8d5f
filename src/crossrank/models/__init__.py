"""Models assembled from the layers: DCN, DLRM, DNN, and a registry to build them by name."""

from crossrank.models.base import RankingModel
from crossrank.models.config import DCNConfig, DLRMConfig, DNNConfig
from crossrank.models.dcn import DCN
from crossrank.models.dlrm import DLRM
from crossrank.models.dnn import DNN
from crossrank.models.heads import loss_fn, predict
from crossrank.models.registry import build_model, list_models, model_from_spec, model_spec
from crossrank.models.schema import FeatureSchema

__all__ = ["DCN", "DLRM", "DNN", "DCNConfig", "DLRMConfig", "DNNConfig", "FeatureSchema",
           "RankingModel", "build_model", "list_models", "loss_fn", "model_from_spec",
           "model_spec", "predict"]
