"""Hyper-parameter search (``crossrank tune``): Optuna's TPE sampler over a search space of
run options, each trial a training run scored on the validation split of the training data.

Optuna is imported inside :func:`tune`, so importing this package stays light.
"""

from crossrank.tune.space import DEFAULT_SPACES, SearchSpace, build_space
from crossrank.tune.study import TuneResult, parse_duration, tune

__all__ = ["DEFAULT_SPACES", "SearchSpace", "TuneResult", "build_space", "parse_duration", "tune"]
