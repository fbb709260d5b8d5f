"""Undoing negative downsampling: probabilities of a model trained with a fraction ``r`` of the
negatives kept, mapped back to the rates of the full data.

Keeping each negative with probability r multiplies the odds of a click by 1/r, so the
model's ``p`` estimates ``q / (q + r (1 - q))`` for the full data's ``q``. Inverting it (He et
al. 2014, "Practical Lessons from Predicting Clicks on Ads at Facebook")::

    q = p / (p + (1 - p) / r)

the identity for ``r = 1``; on logits, ``logit(q) = logit(p) + log r``. The rate is recorded
in ``model.json`` (``negative_sampling_rate``) and applied by ``predict`` and ``evaluate``
(and is there for an exported model's scorer to apply), all through :func:`recalibrate`,
which takes a numpy array or a torch tensor. This module imports no torch, so that the
torch-free scoring path of an export can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")


def check_sampling_rate(rate: float, *, name: str = "negative_sampling_rate") -> float:
    """``rate`` as a float when it is in (0, 1], else a ValueError naming ``name``.

    Example:
        >>> check_sampling_rate(0.25)
        0.25
    """
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 < rate <= 1.0:
        raise ValueError(f"{name} must be in (0, 1] (the fraction of negatives kept), "
                         f"got {rate!r}")
    return float(rate)


def recalibrate(probabilities: ArrayT, rate: float) -> ArrayT:
    """``p / (p + (1 - p) / rate)`` elementwise, in the input's type and dtype.

    Exact at p = 0 and p = 1 (the denominator is at least p + (1 - p) > 0).

    Shape:
        probabilities: any shape, in [0, 1] -> the same shape.

    Example:
        >>> recalibrate(np.array([0.0, 0.5, 1.0]), 0.1).round(6).tolist()
        [0.0, 0.090909, 1.0]
        >>> import torch
        >>> recalibrate(torch.tensor([0.5]), 0.1)
        tensor([0.0909])
    """
    r = check_sampling_rate(rate)
    if r == 1.0:
        return probabilities
    if not isinstance(probabilities, np.ndarray):  # a torch tensor: the same arithmetic
        q = probabilities
        return q / (q + (1 - q) / r)
    p = probabilities
    return p / (p + (1 - p) / r)


def log_rate_shift(rate: float) -> float:
    """What recalibration adds to a logit: ``log rate`` (for exporters that work on logits).

    Example:
        >>> round(log_rate_shift(0.5), 6)
        -0.693147
    """
    return math.log(check_sampling_rate(rate))


def sampling_rate_from_metadata(meta: Mapping[str, Any]) -> float:
    """The ``negative_sampling_rate`` a ``model.json`` records (1.0 when it records none, as a
    model trained before the option existed), checked to be in (0, 1].

    Example:
        >>> sampling_rate_from_metadata({"negative_sampling_rate": 0.1})
        0.1
        >>> sampling_rate_from_metadata({})
        1.0
    """
    return check_sampling_rate(meta.get("negative_sampling_rate", 1.0))
