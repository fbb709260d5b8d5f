"""Kept for imports written before the rename: the task's loss and prediction live in
:mod:`crossrank.models.task`."""

from crossrank.models.task import loss_fn, predict

__all__ = ["loss_fn", "predict"]
