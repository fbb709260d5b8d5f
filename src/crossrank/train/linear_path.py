"""Training the linear family: a regularization path, one point per epoch.

Epoch k of a :class:`~crossrank.models.linear.LinearModel` solves the convex problem

    min_w  sum_i s_i l(x_i, y_i; w) / S  +  ||w||^2 / (2 C_k S),    C_k = path_start * ratio^k

(``l`` the log-loss or squared error, ``s_i`` the rows' weights (1 without), ``S`` their sum,
``w`` every weight but the intercept) to convergence with full-batch L-BFGS (scipy's
L-BFGS-B, the gradient from torch's autograd), starting from epoch k-1's solution. That is
scikit-learn's ``LogisticRegression(C)`` (binary) and ``Ridge(alpha = 1 / (2 C))``
(regression) objective divided by ``C S``: the same minimizer. The Trainer validates after
each point and its early stopping picks C the way it picks a network's epoch;
``training.refit`` then walks the path again on every training row up to the chosen point, as
scikit-learn's baseline refits with the chosen C.

What a network's training options mean here: ``epochs`` is the number of path points at most,
``patience`` as always; the solver reads the training rows in order in chunks of
:data:`CHUNK_ROWS` (its result does not depend on ``batch_size``, ``lr``, ``optimizer``, the
schedule or the seed: a linear run is deterministic).

Example:
    >>> import torch
    >>> from crossrank.models import FeatureSchema
    >>> from crossrank.models.linear import LinearModel
    >>> from crossrank.train.inmemory import TensorSource
    >>> x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    >>> model = LinearModel(FeatureSchema(dense=("x",)), task="regression")
    >>> loss = fit_point(model, TensorSource(x, 2 * x[:, 0]), c=1e6)
    >>> round(float(model(x[:1] + 1).detach()), 3)  # 2 * 1, the penalty all but gone
    2.0
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from crossrank.distributed import current_context
from crossrank.errors import ConfigError
from crossrank.models.base import RankingModel
from crossrank.models.linear import LinearModel
from crossrank.models.task import loss_fn
from crossrank.train.batch_source import BatchSource
from crossrank.train.config import TrainConfig

CHUNK_ROWS = 65_536  # rows per forward pass of the full-batch objective: memory, not result
KEEP_ROWS = 1_000_000  # at most this many rows are kept in memory (float64) through a point
ONE_THREAD_ROWS = 100_000  # below, one CPU thread solves (unless training.threads says)


def solves_by_path(model: RankingModel) -> bool:
    """True for a model the Trainer trains with :func:`path_epoch` (the linear family)."""
    return bool(getattr(model, "solves_by_path", False))


def check_path_training(model: RankingModel, config: TrainConfig) -> bool:
    """Whether the Trainer trains ``model`` along the path (:func:`solves_by_path`); an error
    for the options that cannot apply to it: data-parallel processes, a weight average."""
    if not solves_by_path(model):
        return False
    if current_context().is_distributed:
        raise ConfigError("the linear model trains in one process: run it without torchrun "
                          "(it solves on all its rows at once; a large log wants a network)")
    if config.ema_decay:
        raise ConfigError(f"training.ema_decay {config.ema_decay} averages mini-batch updates; "
                          "the linear model is solved to convergence at each point of its "
                          "path: leave it unset, or 0")
    return True


def path_c(model: RankingModel, epoch: int) -> float:
    """C of the path's point ``epoch`` (from 0) of a linear model."""
    assert isinstance(model, LinearModel)
    return float(model.config.path_start * model.config.path_ratio ** epoch)


def fit_scaling(model: LinearModel, train: BatchSource, *, device: str = "cpu") -> None:
    """Set the model's dense standardization from the rows of ``train`` (their mean and
    standard deviation, unweighted), once: a model already scaled (a resumed run's) keeps it."""
    if bool(model.scaled) or not model.schema.num_dense:
        model.scaled.fill_(True)
        return
    total = torch.zeros(model.schema.num_dense, dtype=torch.float64)
    squares, rows = torch.zeros_like(total), 0
    for dense, _, _, _ in train.iter_batches(CHUNK_ROWS, shuffle=False, seed=0):
        d = dense.to(torch.float64)
        total, squares, rows = total + d.sum(0), squares + d.square().sum(0), rows + d.shape[0]
    mean = total / max(rows, 1)
    std = (squares / max(rows, 1) - mean.square()).clamp_min(0).sqrt()
    model.set_scaling(mean.to(device), std.to(device))


class PathPoint(NamedTuple):
    """A solved point: the weighted mean task loss of the training rows there (without the
    penalty), the L-BFGS iterations it took, and whether it converged (not stopped by the
    ``max_iter`` limit)."""

    loss: float
    iterations: int
    converged: bool


def fit_point(model: LinearModel, train: BatchSource, *, c: float,
              device: str = "cpu") -> PathPoint:
    """Solve the module doc's problem at ``c`` from the model's current weights.

    The solver works on a float64 copy of the model (a float32 objective cannot tell the
    last digits of its minimum apart, and stops short of it; the model is a weight per value,
    so the copy is small) and writes the solution back into ``model``'s own dtype."""
    from scipy.optimize import minimize  # type: ignore[import-untyped]  # (torch's imports dynamo)

    work = copy.deepcopy(model).to(torch.float64)
    params = [p for p in work.parameters() if p.requires_grad]
    chunks = _chunk_reader(train, torch.float64, device)
    total_weight = _total_weight(chunks)
    # minimized as C S times the module doc's objective, C sum_i s_i l_i + |w|^2 / 2 (the
    # same minimizer, scikit-learn's form): its Hessian's eigenvalues are >= 1 along every
    # penalized weight, so a gradient below the tolerance leaves the weights that close
    scale = c * total_weight

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.from_numpy(flat), params)
        for p in params:
            p.grad = None
        value = 0.0
        for part in _weighted_losses(work, chunks, total_weight):
            part = part * scale
            part.backward()
            value += float(part.detach())
        penalty = sum(w.square().sum() for w in work.weights()) / 2.0
        assert isinstance(penalty, Tensor)  # first_order always has its dense weights
        penalty.backward()
        grad = torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p)
                          .reshape(-1) for p in params])
        return value + float(penalty.detach()), grad.cpu().numpy()

    work.train()
    start = torch.nn.utils.parameters_to_vector(params).detach().cpu().numpy()
    solved = minimize(objective, start, jac=True, method="L-BFGS-B",
                      options={"maxiter": model.config.max_iter, "gtol": 1e-9, "ftol": 1e-15})
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(torch.from_numpy(solved.x), params)
        for mine, theirs in zip(model.parameters(), work.parameters(), strict=True):
            mine.copy_(theirs)
        # the task loss at the weights the solver ended with
        loss = float(sum(float(part) for part in _weighted_losses(work, chunks, total_weight)))
    return PathPoint(loss, int(solved.nit), int(solved.nit) < model.config.max_iter)


Chunk = tuple[Tensor, Tensor | None, Tensor, Tensor | None]  # dense, ids, labels, weights


def _chunk_reader(train: BatchSource, dtype: torch.dtype,
                  device: str) -> Callable[[], Iterable[Chunk]]:
    """What reads ``train`` once, in order, in chunks of :data:`CHUNK_ROWS` as ``dtype`` on
    ``device``: a point reads its rows once per evaluation of the objective (hundreds of
    times), so up to :data:`KEEP_ROWS` rows are read once and kept."""
    def read() -> Iterator[Chunk]:
        for dense, sparse, label, weight in train.iter_batches(CHUNK_ROWS, shuffle=False,
                                                               seed=0):
            if label is None:
                raise ValueError("the training data has no label column")
            yield (dense.to(device, dtype), None if sparse is None else sparse.to(device),
                   label.to(device, dtype), None if weight is None else weight.to(device, dtype))

    if len(train) > KEEP_ROWS:
        return read
    kept = list(read())
    return lambda: kept


def _weighted_losses(model: LinearModel, chunks: Callable[[], Iterable[Chunk]],
                     total_weight: float) -> Iterator[Tensor]:
    """Each chunk's task loss times its share of the rows' total weight (they sum to the
    weighted mean loss of the rows)."""
    for dense, sparse, label, weight in chunks():
        share = float(weight.sum()) if weight is not None else float(label.shape[0])
        yield loss_fn(model.task, model(dense, sparse), label, weight) * (share / total_weight)


def path_epoch(model: RankingModel, train: BatchSource, epoch: int, *,
               device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """Epoch ``epoch`` of a linear run: the dense scaling on the first, then the path's point
    ``epoch``. Returns the epoch record's entries: ``train_loss`` (the training rows' mean
    task loss there), ``path_c``, ``path_iterations`` and ``path_converged``. ``threads``
    None (the run did not set ``training.threads``): one CPU thread below
    :data:`ONE_THREAD_ROWS` rows, where a second thread's start-up costs more than it shares
    (5x slower at 200 rows on 2 cores), else torch's count."""
    assert isinstance(model, LinearModel)
    fit_scaling(model, train, device=device)
    before = torch.get_num_threads()
    if threads is None and len(train) < ONE_THREAD_ROWS:
        threads = 1
    try:
        torch.set_num_threads(threads or before)
        c = path_c(model, epoch)
        point = fit_point(model, train, c=c, device=device)
    finally:
        torch.set_num_threads(before)
    return {"train_loss": point.loss, "path_c": c, "path_iterations": point.iterations,
            "path_converged": point.converged}


def _total_weight(chunks: Callable[[], Iterable[Chunk]]) -> float:
    """The rows, or the sum of their weights; an error when that is not > 0."""
    total = 0.0
    for dense, _, _, weight in chunks():
        total += float(weight.sum()) if weight is not None else float(dense.shape[0])
    if not total > 0:
        raise ValueError("the training set is empty (or every row weighs 0)")
    return total
