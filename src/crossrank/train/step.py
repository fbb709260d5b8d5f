"""The training step: the one place in crossrank where a batch becomes an update.

The :class:`~crossrank.train.loop.Trainer` calls it once per batch (file-based runs,
:func:`~crossrank.train.inmemory.fit_tensors`' in-memory runs) and ``crossrank bench`` times it,
so every way of training does the same arithmetic and reports the same loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import clip_grad_norm_, get_total_norm

from crossrank.errors import DivergedError
from crossrank.layers.row_l2 import scaled_by as row_l2_scaled_by
from crossrank.models.base import RankingModel
from crossrank.models.task import loss_fn, multitask_loss
from crossrank.train.config import TrainConfig
from crossrank.train.optim import MultiOptimizer, build_optimizer, lr_factor
from crossrank.train.threads import governor_for


class NonFiniteUpdate(DivergedError):
    """The update of one batch was not applied: its loss or gradient is NaN or infinite.

    Attributes:
        step: the update's number (from 0) on the LR schedule's clock.
        loss: this process's task loss of the batch (finite when only the gradient, or
            another rank's loss, is not).
        why: what was not finite, e.g. ``the loss is nan``.
    """

    def __init__(self, why: str, *, step: int, loss: float) -> None:
        super().__init__(f"update {step}: {why}")
        self.step, self.loss, self.why = step, loss, why


class TrainStep:
    """One optimizer update of ``model`` per call, with the optimizer built from ``config``.

    For a batch (x, y) at update ``step`` of ``total_steps``::

        loss  = task_loss(net(x), y)                  the reported loss (log-loss or MSE;
                                                      with row weights v, sum v l / sum v;
                                                      several tasks: sum_t a_t L_t, masked,
                                                      :func:`~crossrank.models.multitask_loss`)
        total = w * loss + model.regularization()     what is differentiated
        g     = grad(total), dense gradients clipped to a norm of config.grad_clip
                (with precision "bf16", net's matrix products run in bfloat16 under
                torch.autocast; weights, gradients, loss and optimizer stay float32)
        lr    = config.lr (sparse_lr for sparse tables) * the part's config.lr_scales
                * lr_factor(config.schedule, step, total_steps)
        optimizer step (config.optimizer; sparse tables get sparse updates)

    unless ``total`` or ``g`` is not finite (NaN or infinite): then no parameter and no
    optimizer state changes and :class:`NonFiniteUpdate` is raised (the Trainer stops or
    skips the batch, ``config.on_nonfinite``). ``|g|``, the norm that clipping computes
    anyway, is finite exactly when every gradient is, and a non-finite ``total`` is made to
    give a NaN gradient, so that ``|g|`` alone decides: one host sync per update, and without
    clipping one read of the gradients (on 2 CPU threads, ``crossrank bench``'s model: 0.7 ms
    a step with sparse embedding gradients, 10 ms with dense ones, 1% or less of the step).
    Under DDP that decision is taken on the gradients after DDP's all-reduce, identical on
    every rank: one rank's NaN loss stops or skips the update on all of them, with no
    collective of its own.

    ``w`` is the data-parallel weight of this rank's share of the global batch
    (:func:`~crossrank.distributed.shard_batches`), 1 in one process. The regularizer is
    trained on but never reported: a training loss that moved with the penalty could not be
    compared with a validation loss.

    Args:
        model: the model whose parameters are updated.
        config: optimizer, lr, sparse_lr, weight_decay, lr_scales, schedule, warmup_steps,
            grad_clip, device, precision and threads (None: chosen by measurement while
            training, see :mod:`crossrank.train.threads`) are read; the rest is the loop's
            business.
        net: what the forward pass calls, when it is not ``model`` itself (the
            ``DistributedDataParallel`` wrapper of ``model``).
        after_backward: called in order once each backward pass has returned, before the
            gradients are read (under DDP: the average of the sparse tables' gradients over
            the ranks, :class:`~crossrank.distributed.sparse_gradients.SparseGradientAverager`;
            then the lazy weight average's :meth:`~crossrank.train.averaging.WeightAverage.
            before_step`).

    Shape:
        dense: (B, n_dense) float; sparse: (B, F) int64, or None for a dense-only model;
        label: (B,), sample_weight: (B,) or None -> the task loss, a detached scalar.

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
                 net: nn.Module | None = None,
                 after_backward: Sequence[Callable[[], None]] = ()) -> None:
        self.model, self.config = model, config
        self.after_backward = tuple(after_backward)
        self.net: nn.Module = model if net is None else net
        self.optimizer: MultiOptimizer = build_optimizer(
            model, config.optimizer, config.lr, sparse_lr=config.sparse_lr,
            weight_decay=config.weight_decay, lr_scales=config.lr_scales)
        # config.threads None: the CPU thread count is measured step by step (threads.py)
        self.threads = governor_for(config.threads, config.device, model,
                                    precision=config.precision)

    def __call__(self, dense: Tensor, sparse: Tensor | None, label: Tensor, *, step: int,
                 total_steps: int, weight: float | None = None,
                 sample_weight: Tensor | None = None,
                 row_share: float | None = None) -> Tensor:
        """Update on one batch as update number ``step`` (from 0) of ``total_steps`` (the LR
        schedule's clock); ``weight``: this rank's share weight under DDP, else None;
        ``row_share``: under DDP, this rank's share of the global batch's rows, ``n_r W / b``
        (the embedding rows' L2 is scaled by it, :mod:`crossrank.layers.row_l2`), else None;
        ``sample_weight``: the rows' weights, or None. Returns the task loss, detached,
        without the regularizer."""
        cfg, model, opt = self.config, self.model, self.optimizer
        if self.threads is not None:
            self.threads.begin()
        device = cfg.device
        dense, label = dense.to(device), label.to(device)
        if sparse is not None:
            sparse = sparse.to(device)
        opt.set_lr_factor(lr_factor(cfg.schedule, step, total_steps,
                                    warmup_steps=cfg.warmup_steps))
        if sample_weight is not None:
            sample_weight = sample_weight.to(device)
        # bf16: the products in bfloat16, the loss, weights and updates in float32
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                            enabled=cfg.precision == "bf16"), \
                row_l2_scaled_by(1.0 if row_share is None else row_share):
            logits = self.net(dense, sparse)
        if cfg.precision == "bf16":  # a float64 model keeps its float64 loss
            logits = logits.float()
        if len(model.tasks) > 1:  # labels (B, T), NaN where missing: masked per task
            loss, _ = multitask_loss(model.tasks, logits, label, sample_weight,
                                     cfg.task_weights or None)
        else:
            loss = loss_fn(model.task, logits, label, sample_weight)
        total = (loss if weight is None else loss * weight) + model.regularization()
        # x 1, or x NaN when total is not finite: every gradient is then NaN, also where the
        # loss overflowed but its gradient did not (MSE), and DDP's all-reduce carries that to
        # every rank. On the device, no synchronisation.
        total = total * torch.where(torch.isfinite(total.detach()), 1.0, math.nan)
        opt.zero_grad()
        total.backward()
        for hook in self.after_backward:
            hook()
        if not bool(torch.isfinite(self._gradient_norm())):  # the one host sync of the check
            opt.zero_grad()
            value = float(loss.detach())
            if not math.isfinite(value):
                why = f"the loss is {value}"
            elif weight is None:
                why = (f"the loss is finite ({value:.4g}) but the gradient is not (NaN or "
                       "infinite, or too large for its norm to be a float)")
            else:
                why = (f"the gradient is not finite (this rank's loss is {value:.4g}: another "
                       "rank's loss, or the backward pass, was not)")
            raise NonFiniteUpdate(why, step=step, loss=value)
        opt.step()
        if self.threads is not None:
            self.threads.end(rows=label.shape[0])
        return loss.detach()

    def _gradient_norm(self) -> Tensor:
        """The 2-norm of every gradient, dense ones clipped to ``config.grad_clip`` (which
        returns their norm before clipping); NaN or infinite when any gradient is."""
        dense: list[nn.Parameter] = []  # with a dense gradient
        sparse: list[Tensor] = []  # values of the sparse gradients
        for p in self.model.parameters():
            if p.grad is not None:
                if p.grad.is_sparse:
                    sparse.append(p.grad._values())
                else:
                    dense.append(p)
        if self.config.grad_clip:
            norm = clip_grad_norm_(dense, self.config.grad_clip)
        else:
            norm = get_total_norm([p.grad for p in dense if p.grad is not None])
        if sparse:  # never clipped; an uncoalesced gradient's values are its terms
            norm = norm + get_total_norm(sparse)
        return norm
