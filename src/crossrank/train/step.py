"""The training step: the one place in crossrank where a batch becomes an update.

The :class:`~crossrank.train.loop.Trainer` calls it once per batch (file-based runs,
:func:`~crossrank.train.inmemory.fit_tensors`' in-memory runs) and ``crossrank bench`` times it,
so every way of training does the same arithmetic and reports the same loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from crossrank.models.base import RankingModel
from crossrank.models.task import loss_fn
from crossrank.train.config import TrainConfig
from crossrank.train.optim import MultiOptimizer, build_optimizer, lr_factor


class TrainStep:
    """One optimizer update of ``model`` per call, with the optimizer built from ``config``.

    For a batch (x, y) at update ``step`` of ``total_steps``::

        loss  = task_loss(net(x), y)                  the reported loss (log-loss or MSE)
        total = w * loss + model.regularization()     what is differentiated
        g     = grad(total), dense gradients clipped to a norm of config.grad_clip
        lr    = config.lr (sparse_lr for sparse tables) * the part's config.lr_scales
                * lr_factor(config.schedule, step, total_steps)
        optimizer step (config.optimizer; sparse tables get sparse updates)

    ``w`` is the data-parallel weight of this rank's share of the global batch
    (:func:`~crossrank.distributed.shard_batches`), 1 in one process. The regularizer is
    trained on but never reported: a training loss that moved with the penalty could not be
    compared with a validation loss.

    Args:
        model: the model whose parameters are updated.
        config: optimizer, lr, sparse_lr, weight_decay, lr_scales, schedule, warmup_steps,
            grad_clip and device are read; the rest is the loop's business.
        net: what the forward pass calls, when it is not ``model`` itself (the
            ``DistributedDataParallel`` wrapper of ``model``).

    Shape:
        dense: (B, n_dense) float; sparse: (B, F) int64, or None for a dense-only model;
        label: (B,) -> the task loss, a detached scalar.

    Example:
        >>> from crossrank.models import DCN, CrossConfig, DCNConfig, FeatureSchema
        >>> m = DCN(FeatureSchema(dense=("x",)), DCNConfig(structure="cross_only",
        ...         cross=CrossConfig(num_layers=1)), task="regression")
        >>> train_step = TrainStep(m, TrainConfig(lr=0.1))
        >>> x = torch.rand(8, 1)
        >>> loss = train_step(x, None, 2 * x[:, 0], step=0, total_steps=1)
        >>> loss.shape, loss.requires_grad
        (torch.Size([]), False)
    """

    def __init__(self, model: RankingModel, config: TrainConfig, *,
                 net: nn.Module | None = None) -> None:
        self.model, self.config = model, config
        self.net: nn.Module = model if net is None else net
        self.optimizer: MultiOptimizer = build_optimizer(
            model, config.optimizer, config.lr, sparse_lr=config.sparse_lr,
            weight_decay=config.weight_decay, lr_scales=config.lr_scales)

    def __call__(self, dense: Tensor, sparse: Tensor | None, label: Tensor, *, step: int,
                 total_steps: int, weight: float | None = None) -> Tensor:
        """Update on one batch as update number ``step`` (from 0) of ``total_steps`` (the LR
        schedule's clock); ``weight``: this rank's share weight under DDP, else None.
        Returns the task loss, detached, without the regularizer."""
        cfg, model, opt = self.config, self.model, self.optimizer
        device = cfg.device
        dense, label = dense.to(device), label.to(device)
        if sparse is not None:
            sparse = sparse.to(device)
        opt.set_lr_factor(lr_factor(cfg.schedule, step, total_steps,
                                    warmup_steps=cfg.warmup_steps))
        loss = loss_fn(model.task, self.net(dense, sparse), label)
        total = (loss if weight is None else loss * weight) + model.regularization()
        opt.zero_grad()
        total.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.grad is not None and not p.grad.is_sparse],
                cfg.grad_clip)
        opt.step()
        return loss.detach()
