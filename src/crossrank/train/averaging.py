"""An exponential moving average (EMA) of a model's weights over the training updates
(``training.ema_decay``): on small data, the average of the weights the last few hundred
updates visited scores better than the last of them (less of the last batches' noise).

After update t (t = 1, 2, ...) the average of a weight w is the normalized EMA

    avg_t = sum_{i=1..t} d^(t-i) w_i / sum_{i=1..t} d^(t-i)

(d the decay): the bias-corrected form, a mean over the updates done so far whose weights
decay by d per update, with no pull towards the initial weights w_0. It is computed by the
recurrence ``avg_t = avg_{t-1} + (1 - d) / (1 - d^t) * (w_t - avg_{t-1})`` (avg_1 = w_1).

Every floating-point entry of the model's ``state_dict`` is averaged, batch norm's running
mean and variance too: they are themselves moving averages of the batch statistics of the
recent weights, and averaged over the same updates they describe the averaged weights'
activations as nearly as statistics of the live weights can (copying the live ones would pair
the averaged weights with the last weights' statistics). Integer entries (batch norm's
``num_batches_tracked``) are not averaged: the live value stays.

Embedding tables with sparse gradients are averaged lazily (``lazy_tables``): a row changes
only in the updates whose batch looks it up, and while its weight w stays the same the
recurrence folds to avg_t - w = (avg_s - w) g(t) / g(s) with g(t) = d^t / (1 - d^t). So a
lazy row keeps r = (avg - w) / g, which does not move while the row does not; an update that
changes the row from w to w' adds (w - w') / g(t - 1) to it (the recurrence, rearranged), and
avg_t = w + r g(t) when the average is read (validation, a checkpoint). Each update then
touches only the rows its batch changed (their weights before the step are kept by
:meth:`WeightAverage.before_step`), where the plain average passes over every row of every
table; r is kept relative to a base update, moved every few thousand updates so that g's
ratios stay within float range. The same values to rounding (tested in float64).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

# training.ema_decay none: the decay of a regression run (every label a regression), no average
# for the others. Chosen on the defaults study (README Defaults, 5 seeds): on MovieLens-100K
# regression it took the defaults' test RMSE from 0.9212 to 0.9148 (4 seeds of 5 better); on
# Criteo head-10k (binary) it cost 0.0048 AUC (every seed worse), where the other binary sets
# gained ~0.001.
REGRESSION_EMA_DECAY = 0.995


def resolve_ema_decay(decay: float | None, tasks: Sequence[str]) -> float | None:
    """The decay a run averages its weights with, None for no average: ``decay`` as given
    (0: no average); None (``training.ema_decay``'s default) decides by the task:
    :data:`REGRESSION_EMA_DECAY` when every task is ``regression``, else no average.

    Example:
        >>> resolve_ema_decay(None, ["regression"]), resolve_ema_decay(None, ["binary"])
        (0.995, None)
        >>> resolve_ema_decay(0.9, ["binary"]), resolve_ema_decay(0.0, ["regression"])
        (0.9, None)
    """
    if decay is None:
        every_regression = bool(tasks) and all(task == "regression" for task in tasks)
        return REGRESSION_EMA_DECAY if every_regression else None
    return decay if decay > 0 else None


class WeightAverage:
    """The EMA of ``model``'s floating-point weights and buffers, updated by :meth:`update`
    after each optimizer update.

    Args:
        model: the model trained; its weights at construction are not part of the average.
        decay: d in (0, 1); the average spans about 1 / (1 - d) updates.
        lazy_tables: (state_dict name, weight) of tables whose rows change only with their
            gradient's rows (sparse gradients): averaged lazily (module doc); then call
            :meth:`before_step` between the backward pass and each optimizer step.

    Example:
        >>> m = nn.Linear(1, 1, bias=False)
        >>> avg = WeightAverage(m, decay=0.5)
        >>> for w in (1.0, 2.0, 4.0):
        ...     _ = m.weight.data.fill_(w)
        ...     avg.update()
        >>> round(avg.averages()["weight"].item(), 4)  # (1*1 + 2*2 + 4*4) / (1 + 2 + 4)
        3.0
    """

    def __init__(self, model: nn.Module, *, decay: float,
                 lazy_tables: Iterable[tuple[str, Tensor]] = ()) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay!r}")
        self.model, self.decay = model, decay
        self.updates = 0  # t: updates averaged so far
        self._lazy: dict[str, Tensor] = dict(lazy_tables)
        state = model.state_dict()
        unknown = sorted(n for n in self._lazy
                         if n not in state or not state[n].is_floating_point())
        if unknown:
            raise ValueError(f"lazy tables {unknown} are not floating-point entries of the "
                             "model's state_dict")
        self._shadow: dict[str, Tensor] = {
            name: value.detach().clone() for name, value in state.items()
            if value.is_floating_point() and name not in self._lazy}
        # lazy tables (module doc): r = (avg - w) * g(base) / g(t), 0 before any update
        self._residual = {name: torch.zeros_like(w.detach()) for name, w in self._lazy.items()}
        self._base = 0  # the update r is relative to (0: none yet, g(0) taken as 1)
        self._rebase_every = max(1, int(20 / -math.log(decay)))  # d^-R <= e^20
        self._before: dict[str, tuple[Tensor, Tensor]] | None = None

    @torch.no_grad()
    def before_step(self) -> None:
        """Call after the backward pass and before the optimizer step when there are lazy
        tables: keeps the weights the step will change (the rows in their gradients)."""
        self._before = {}
        for name, weight in self._lazy.items():
            grad = weight.grad
            if grad is None:
                continue
            # a row repeated in the gradient is updated twice, to the same value (sorting
            # them out first cost more than it saved: crossrank bench's model, 2026-12-02)
            rows = (grad._indices()[0] if grad.is_sparse else  # a dense gradient: every row
                    torch.arange(weight.shape[0], device=weight.device))
            self._before[name] = (rows, weight.detach().index_select(0, rows))

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights in as update t + 1."""
        if self._lazy and self._before is None:
            raise RuntimeError("lazy tables: call before_step() before each optimizer step")
        self.updates += 1
        d, t = self.decay, self.updates
        factor = (1 - d) / (1 - d ** t)  # 1 at t = 1: the average starts at w_1
        live = self.model.state_dict()
        for name, avg in self._shadow.items():
            avg.lerp_(live[name].detach(), factor)
        step = self._g_ratio(self._base, t - 1)  # g(base) / g(t - 1); 0 at t = 1
        for name, (rows, before) in (self._before or {}).items():
            residual = self._residual[name]
            change = before.sub_(self._lazy[name].detach().index_select(0, rows))  # w - w'
            residual.index_copy_(0, rows, residual.index_select(0, rows).add_(change, alpha=step))
        self._before = None if self._lazy else {}
        if t - self._base >= self._rebase_every:
            scale = self._g_ratio(t, self._base)  # g(t) / g(base)
            for residual in self._residual.values():
                residual.mul_(scale)
            self._base = t

    def _g_ratio(self, a: int, b: int) -> float:
        """g(a) / g(b) with g(t) = d^t / (1 - d^t) and g(0) taken as 1 (the unbased r),
        computed without forming d^t alone (it underflows over long runs)."""
        d = self.decay
        if b == 0:  # 1 / g(0) := 1
            return 0.0 if a == 0 else d ** a / (1 - d ** a)  # a < rebase_every here
        if a == 0:
            return (1 - d ** b) / d ** b  # b < rebase_every here
        return d ** (a - b) * (1 - d ** b) / (1 - d ** a)

    def averages(self) -> dict[str, Tensor]:
        """Every averaged tensor by its state_dict name (the lazy tables' computed now; the
        model's own weights before any update)."""
        out = dict(self._shadow)
        scale = self._g_ratio(self.updates, self._base) if self.updates else 0.0
        for name, residual in self._residual.items():
            out[name] = torch.add(self._lazy[name].detach(), residual, alpha=scale)
        return out

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own again after it
        (before any update the average is empty and the model keeps its own)."""
        if self.updates == 0:
            yield
            return
        averages = self.averages()
        live = self.model.state_dict()
        kept = {name: live[name].detach().clone() for name in averages}
        self._copy_into_model(averages)
        try:
            yield
        finally:
            self._copy_into_model(kept)

    @torch.no_grad()
    def state_dict(self) -> dict[str, Tensor]:
        """What a checkpoint keeps to continue the average exactly, by the model's state_dict
        names: the averaged tensors, and for a lazy table its residual r, based at the
        current update (the base moves here, so that a resumed run and one that went on
        hold the same r)."""
        if self.updates and self._base != self.updates:
            scale = self._g_ratio(self.updates, self._base)
            for residual in self._residual.values():
                residual.mul_(scale)
            self._base = self.updates
        return {**self._shadow, **self._residual}

    @torch.no_grad()
    def load_state_dict(self, tensors: dict[str, Tensor], updates: int, *,
                        residuals: bool = True) -> None:
        """Continue from a checkpoint's :meth:`state_dict` after ``updates`` updates;
        ``residuals=False``: its lazy tables hold averages (a checkpoint written before they
        were kept as residuals), and the model the weights it had then."""
        names = set(self._shadow) | set(self._residual)
        if set(tensors) != names:
            raise ValueError(f"the average's tensors must be {sorted(names)}, got "
                             f"{sorted(tensors)}")
        for name, avg in self._shadow.items():
            avg.copy_(tensors[name])
        for name, residual in self._residual.items():  # based at this update
            residual.copy_(tensors[name])
            if not residuals:
                residual.sub_(self._lazy[name].detach())  # r = avg - w
            if not updates:
                residual.zero_()
        self.updates, self._base = updates, updates

    def copy_into_model(self) -> None:
        """Load the averaged weights into the model (for good)."""
        self._copy_into_model(self.averages())

    @torch.no_grad()
    def _copy_into_model(self, tensors: dict[str, Tensor]) -> None:
        live = self.model.state_dict()
        for name, value in tensors.items():
            live[name].copy_(value)
