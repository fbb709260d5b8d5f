"""Data-parallel training across processes with ``torch.distributed`` (DDP), launched by torchrun.

Run (one process per device; on CPU, one per group of cores)::

    torchrun --nproc_per_node=2 -m crossrank train ...
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --master_port=29500 \\
        --nproc_per_node=8 -m crossrank train ...

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; :func:`init_distributed`
reads them and joins the process group ("nccl" on CUDA, "gloo" on CPU). When the process group
has W > 1 ranks, :class:`crossrank.train.loop.Trainer` wraps the model in
``torch.nn.parallel.DistributedDataParallel`` and changes nothing else about the mathematics:

* Every rank draws the same global order (seed + epoch, independent of W) and cuts the same
  global batches of ``batch_size`` rows from it; rank r trains on the r-th contiguous share of
  each (:func:`shard_bounds`, shares differ by at most one row). Each rank's loss is its rows'
  loss sum times W / b, with b the global batch's row count, so DDP's gradient average is
  exactly the mean gradient of the global batch, also for the last, smaller batch and for
  shares of unequal (even zero) size: every row is trained on exactly once per epoch and a run
  on W processes follows a one-process run with the same ``batch_size`` up to float rounding.
* Validation: each rank scores its share of every validation batch; the scores and labels are
  gathered (:func:`all_gather_1d`) and the metrics computed once over all rows (AUC over the
  gathered scores, never an average of per-rank AUCs).
* Data preparation (:mod:`crossrank.prepare`): each rank parses only its own range of the input
  files, the encoder is fitted from all ranks' merged statistics and the ranks' encoded parts
  are joined into one cache, identical to one process's; a failure on any rank (a bad row)
  stops every rank with the same message (:func:`all_gather_bytes` carries it).
* Only rank 0 writes checkpoints and ``metrics.jsonl`` and prints; the monitored value is
  broadcast from rank 0 so that every rank takes the same early-stopping decision, and the best
  weights are broadcast from rank 0 at the end. ``resume`` reads ``out_dir`` on every rank, so
  it needs a file system that all ranks share.

A data source with ``iter_shares`` (``crossrank.data.EncodedDataset``) reads only the rows of
the rank's share (:func:`batch_share` says which, and their weight); for a source with only
``iter_batches`` every rank reads whole global batches and keeps its share
(:func:`shard_batches`, the reference), which costs W times the reads.

Embeddings are replicated: every rank holds the whole table and DDP all-reduces its (sparse,
on gloo) gradients. When a table outgrows one device's memory, shard it instead: TorchRec's
``EmbeddingBagCollection``/``EmbeddingCollection`` under ``DistributedModelParallel`` places
tables (or rows/columns of them) on different ranks and exchanges lookups with all-to-all.
It fits behind the model's embedding interface, :class:`crossrank.layers.embedding.FieldEmbedding`
(``forward(ids (B, F)) -> (B, F, D)``): a module that turns the (B, F) ids into a
``KeyedJaggedTensor`` (one key per field, one id per row), looks them up in a sharded
``EmbeddingCollection`` with one table per field (or the single offset table) and stacks the
per-field (B, D) results into (B, F, D) can replace ``model.embedding``; the dense part stays
under DDP (TorchRec's ``DistributedModelParallel`` does both) and the optimizer for the
sharded tables moves into TorchRec's fused embedding optimizer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes and its device.

    Example:
        >>> ctx = DistContext(rank=0, world_size=1, local_rank=0, device="cpu")
        >>> ctx.is_main, ctx.is_distributed
        (True, False)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def current_context() -> DistContext:
    """The context of the initialized process group, or a single-process one when none is."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank))
    device = f"cuda:{local}" if dist.get_backend() == "nccl" else "cpu"
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device)


def init_distributed(backend: str | None = None) -> DistContext:
    """Join the process group described by torchrun's environment variables.

    ``backend`` defaults to "nccl" when CUDA is available and "gloo" otherwise. Without
    WORLD_SIZE in the environment (not launched by torchrun) or with WORLD_SIZE = 1 this is a
    no-op returning the single-process context.

    Example:
        >>> init_distributed() if "WORLD_SIZE" not in os.environ else DistContext()
        DistContext(rank=0, world_size=1, local_rank=0, device='cpu')
    """
    if dist.is_available() and dist.is_initialized():
        return current_context()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistContext(device="cuda:0" if torch.cuda.is_available() else "cpu")
    missing = [name for name in _ENV if name not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE > 1 needs the environment variables {missing} "
                         "(launch with torchrun)")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend must be 'nccl', 'gloo' or None, got {backend!r}")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, rank=int(os.environ["RANK"]),
                            world_size=int(os.environ["WORLD_SIZE"]))
    return current_context()


def cleanup(*, timeout_s: float = 30.0) -> None:
    """Leave the process group (a no-op when none is initialized), once every rank is done.

    The ranks first meet at a barrier: a rank that returns from the last collective can
    otherwise tear its group down while a peer still completes that collective with it, and
    then one of them aborts at exit with "terminate called without an active exception"
    (in 6 of 12 two-process gloo runs of ``crossrank train`` on the 2-core machine without
    the barrier, in none of 16 with it). On gloo the barrier is ``monitored_barrier``,
    which gives up after ``timeout_s`` (a peer that failed alone, or is stuck elsewhere) rather
    than hanging; the group is destroyed either way.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if dist.get_world_size() > 1:
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=timedelta(seconds=timeout_s))
            else:
                dist.barrier()
    except RuntimeError:
        pass  # a peer is gone or stuck: nothing left to wait for
    finally:
        dist.destroy_process_group()


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of a batch of ``n`` rows that ``rank`` takes: contiguous shares whose
    sizes differ by at most one, the larger ones first (as ``numpy.array_split``).

    Example:
        >>> [shard_bounds(5, r, 2) for r in range(2)]
        [(0, 3), (3, 5)]
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def batch_share(n: int, rank: int, world_size: int) -> tuple[int, int, float]:
    """Rows ``[lo, hi)`` of a global batch of ``n`` rows that ``rank`` computes on, and the
    weight of their mean loss (see :func:`shard_batches`).

    The rows are :func:`shard_bounds`' share, or the batch's first row with weight 0 when that
    share is empty.

    Example:
        >>> batch_share(5, 1, 2), batch_share(1, 1, 2)
        ((3, 5, 0.8), (0, 1, 0.0))
    """
    lo, hi = shard_bounds(n, rank, world_size)
    weight = (hi - lo) * world_size / n if n else 0.0
    if lo == hi:
        lo, hi = 0, min(n, 1)
    return lo, hi, weight


def shard_batches(batches: Iterable[tuple[Any, ...]], *, rank: int, world_size: int
                  ) -> Iterator[tuple[float, tuple[Any, ...]]]:
    """This rank's share of every global batch, with the weight of its mean loss.

    The weight is n_r W / b for a share of n_r of the global batch's b rows: DDP averages the
    W ranks' gradients, so weighting each rank's mean loss by it gives the gradient of the
    global batch's mean loss (the weight is 1 when the shares are equal). A rank whose share
    is empty (b < W) gets the global batch's first row with weight 0, so that it still runs
    the forward and backward passes DDP's all-reduce needs, contributing a zero gradient.

    Shape:
        each batch: tensors with a leading (b,) dimension (None entries pass through)
        -> (weight, the same tensors cut to rows ``shard_bounds(b, rank, world_size)``).

    Example:
        >>> batches = [(torch.arange(4), None), (torch.arange(4, 7), None)]
        >>> [(w, x.tolist()) for w, (x, _) in shard_batches(batches, rank=1, world_size=2)]
        [(1.0, [2, 3]), (0.6666666666666666, [6])]
    """
    for batch in batches:
        n = next(t.shape[0] for t in batch if t is not None)
        lo, hi, weight = batch_share(n, rank, world_size)
        yield weight, tuple(None if t is None else t[lo:hi] for t in batch)


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_1d(array: np.ndarray) -> np.ndarray:
    """Concatenate every rank's 1-D ``array`` (lengths may differ) in rank order, on all ranks.

    The arrays are padded to the longest length for ``all_gather`` and trimmed back. Without
    an initialized process group this returns ``array`` itself.

    Shape:
        array: (n_r,) on rank r -> (sum_r n_r,).

    Example:
        >>> all_gather_1d(np.array([1.0, 2.0]))
        array([1., 2.])
    """
    array = np.asarray(array)
    if array.ndim != 1:
        raise ValueError(f"array must be 1-D, got shape {array.shape}")
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return array
    return np.concatenate(_all_gather_parts(array))


def all_gather_bytes(payload: bytes) -> list[bytes]:
    """Every rank's ``payload`` (lengths may differ, empty too), in rank order, on all ranks.

    For small messages between ranks (an error to report, a few numbers as JSON) without
    pickling objects. Without an initialized process group: ``[payload]``.

    Example:
        >>> all_gather_bytes(b"rank 0 failed")
        [b'rank 0 failed']
    """
    if not isinstance(payload, bytes):
        raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [payload]
    array = np.frombuffer(payload, dtype=np.uint8).copy()  # writable, for torch
    return [p.tobytes() for p in _all_gather_parts(array)]


def _all_gather_parts(array: np.ndarray) -> list[np.ndarray]:
    """Every rank's 1-D ``array`` as a list in rank order (padded for all_gather, trimmed)."""
    device, world = _collective_device(), dist.get_world_size()
    length = torch.tensor([len(array)], dtype=torch.int64, device=device)
    lengths = [torch.zeros_like(length) for _ in range(world)]
    dist.all_gather(lengths, length)
    sizes = [int(t.item()) for t in lengths]
    padded = torch.zeros(max(max(sizes), 1), dtype=torch.from_numpy(array[:0]).dtype,
                         device=device)
    padded[:len(array)] = torch.from_numpy(np.ascontiguousarray(array)).to(device)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return [p[:n].cpu().numpy() for p, n in zip(parts, sizes)]


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks of a few floats (float64); identity without a group."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def broadcast_float(value: float, *, src: int = 0) -> float:
    """Rank ``src``'s ``value`` on every rank (float64); identity without a group."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.broadcast(t, src=src)
    return float(t.item())


def broadcast_module(module: nn.Module, *, src: int = 0) -> None:
    """Overwrite ``module``'s parameters and buffers, in place, with rank ``src``'s."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=src)
