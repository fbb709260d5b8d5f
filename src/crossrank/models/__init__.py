"""Models assembled from the layers: DCN, DLRM, DNN, the linear model, and a registry to build
them by name."""

from crossrank.models.base import RankingModel
from crossrank.models.config import (
    CrossConfig,
    DCNConfig,
    DLRMConfig,
    DNNConfig,
    LinearConfig,
    LogitTerms,
    MultiTaskConfig,
)
from crossrank.models.dcn import DCN
from crossrank.models.dlrm import DLRM
from crossrank.models.dnn import DNN
from crossrank.models.linear import LinearModel
from crossrank.models.multitask import MultiTaskModel
from crossrank.models.protocol import CrossModel, InteractionArch, LogitTerm, Regularized
from crossrank.models.registry import (
    build_model,
    list_models,
    model_entry,
    model_from_spec,
    model_spec,
)
from crossrank.models.schema import FeatureSchema
from crossrank.models.task import TASKS, loss_fn, multitask_loss, predict

__all__ = ["DCN", "DLRM", "DNN", "TASKS", "CrossConfig", "CrossModel", "DCNConfig", "DLRMConfig",
           "DNNConfig", "FeatureSchema", "InteractionArch", "LinearConfig", "LinearModel",
           "LogitTerm", "LogitTerms", "MultiTaskConfig", "MultiTaskModel", "RankingModel",
           "Regularized", "build_model", "list_models", "loss_fn", "model_entry",
           "model_from_spec", "model_spec", "multitask_loss", "predict"]
