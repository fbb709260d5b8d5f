"""What the command line runs, as library functions: train a run from its configuration,
evaluate, predict, explain and export a saved model. The CLI (:mod:`crossrank.cli`) only parses
arguments into these calls."""

from crossrank.pipeline.evaluate import evaluate_on_data
from crossrank.pipeline.explain import explain_model_dir
from crossrank.pipeline.export import export_model_dir
from crossrank.pipeline.predict import predict_on_data
from crossrank.pipeline.run_config import ModelSection, RunConfig, build_run_config
from crossrank.pipeline.train_run import train_run

__all__ = ["ModelSection", "RunConfig", "build_run_config", "evaluate_on_data",
           "explain_model_dir", "export_model_dir", "predict_on_data", "train_run"]
