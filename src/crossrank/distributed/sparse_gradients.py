"""Sparse embedding gradients averaged over the ranks by crossrank, after the backward pass,
instead of by ``DistributedDataParallel``.

DDP all-reduces a sparse gradient on gloo with the process group's sparse all-reduce, run on
gloo's worker thread while the backward pass goes on in the caller's. With torch 2.13 on a
2-core machine under load that corrupts the process's heap now and then: the rank aborts in
the middle of a backward pass with "malloc(): unaligned tcache chunk detected", "double free
or corruption (out)" or a segmentation fault. A plain torch script shows it (DDP over seven
sparse ``nn.Embedding`` tables and an ``embedding_bag``, 2 gloo ranks, three other CPU-bound
processes on the 2 cores, 2026-12-02): 4 of the first 9 launches of 4,000 steps aborted;
the same script with the tables left out of DDP and their gradients gathered as here: none
of 16. ``crossrank train`` under DDP with a multi-valued field aborted in 2 of 20 runs of 40
epochs. (On NCCL, DDP has no sparse all-reduce at all.)

So the trainer leaves every table with sparse gradients out of DDP (:func:`leave_out_of_ddp`,
DDP's ignore list; their weights are broadcast from rank 0 as DDP broadcasts the others), and
:class:`SparseGradientAverager` averages their gradients once ``backward`` has returned, on
the calling thread, with three dense collectives for all tables together: an ``all_gather`` of
each table's number of gradient rows on every rank, then one of all the row indices and one of
all the values (each padded to the longest rank's). Table k's gradient becomes the rows of
every rank in rank order, values divided by W: DDP's average, uncoalesced (the sparse
optimizers sum duplicate rows). Every rank builds it from the same gathered bytes, so every
rank applies the same update.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["SparseGradientAverager", "leave_out_of_ddp", "sparse_tables"]

_NO_GRADIENT = -1  # a rank's row count for a table it has no gradient for


def sparse_tables(model: nn.Module) -> list[tuple[str, Tensor]]:
    """(name, weight) of every ``nn.Embedding`` of ``model`` with sparse gradients.

    Example:
        >>> m = nn.ModuleDict({"a": nn.Embedding(3, 2, sparse=True), "b": nn.Embedding(3, 2)})
        >>> [name for name, _ in sparse_tables(m)]
        ['a.weight']
    """
    return [(f"{name}.weight" if name else "weight", module.weight)
            for name, module in model.named_modules()
            if isinstance(module, nn.Embedding) and module.sparse]


def leave_out_of_ddp(model: nn.Module) -> list[tuple[str, Tensor]]:
    """Put ``model``'s sparse tables on DDP's ignore list (call before wrapping it) and give
    every rank rank 0's weights for them (DDP does that for the parameters it keeps); returns
    the tables (:func:`sparse_tables`). Needs an initialized process group."""
    tables = sparse_tables(model)
    if tables:
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            model, [name for name, _ in tables])
        with torch.no_grad():
            for _, weight in tables:
                dist.broadcast(weight.data, src=0)
    return tables


class SparseGradientAverager:
    """Averages the sparse gradients of ``tables`` over the process group's W ranks.

    After each rank's backward pass, :meth:`average` makes table k's gradient on every rank::

        grad_k = sparse(indices = cat_r idx_k^r, values = cat_r val_k^r / W)

    (r in rank order; ``idx_k^r``, ``val_k^r``: rank r's gradient rows of table k, coalesced
    first). A table no rank has a gradient for keeps None; one whose gradient some ranks lack
    counts no rows from them.

    Shape:
        table k's weight (N_k, D_k); its gradient's values (rows, D_k).

    Example (one process: the group of one rank leaves the gradients as they are):
        >>> table = nn.Embedding(4, 2, sparse=True)
        >>> table(torch.tensor([1, 1, 3])).sum().backward()
        >>> SparseGradientAverager([("weight", table.weight)]).average()
        >>> table.weight.grad.coalesce().indices().tolist()
        [[1, 3]]
    """

    def __init__(self, tables: Sequence[tuple[str, Tensor]]) -> None:
        self.names = [name for name, _ in tables]
        self.weights = [weight for _, weight in tables]
        dtypes = {w.dtype for w in self.weights}
        if len(dtypes) > 1:
            raise ValueError(f"sparse tables of several dtypes {sorted(map(str, dtypes))}")

    def average(self) -> None:
        """Replace each table's gradient by its average over the ranks (see the class doc);
        a collective: every rank calls it after every backward pass."""
        if not self.weights or not (dist.is_available() and dist.is_initialized()):
            return
        world = dist.get_world_size()
        if world == 1:
            return
        device = self.weights[0].device
        local = [None if w.grad is None else w.grad.coalesce() for w in self.weights]
        rows = torch.tensor([_NO_GRADIENT if g is None else g._nnz() for g in local],
                            dtype=torch.int64, device=device)  # (K,)
        every_rows = _all_gather(rows, world)  # W x (K,)
        counts = [torch.clamp(r, min=0).tolist() for r in every_rows]  # W x K
        widths = [w.shape[1] for w in self.weights]  # D_k
        indices = _gathered(
            [g.indices()[0] for g in local if g is not None],
            [sum(c) for c in counts], torch.int64, device, world)
        values = _gathered(
            [g.values().reshape(-1) for g in local if g is not None],
            [sum(n * d for n, d in zip(c, widths)) for c in counts],
            self.weights[0].dtype, device, world)
        present = [any(int(r[k]) != _NO_GRADIENT for r in every_rows)
                   for k in range(len(self.weights))]
        self._install(indices, values, counts, widths, present, world)

    def _install(self, indices: list[Tensor], values: list[Tensor], counts: list[list[int]],
                 widths: list[int], present: list[bool], world: int) -> None:
        """Cut each rank's gathered rows into the tables' and set the averaged gradients."""
        table_indices: list[list[Tensor]] = [[] for _ in self.weights]
        table_values: list[list[Tensor]] = [[] for _ in self.weights]
        for r in range(world):
            at_index = at_value = 0
            for k, (n, d) in enumerate(zip(counts[r], widths)):
                table_indices[k].append(indices[r][at_index:at_index + n])
                table_values[k].append(values[r][at_value:at_value + n * d].view(n, d))
                at_index, at_value = at_index + n, at_value + n * d
        for k, weight in enumerate(self.weights):
            if not present[k]:
                weight.grad = None
                continue
            weight.grad = torch.sparse_coo_tensor(
                torch.cat(table_indices[k]).unsqueeze(0),  # (1, rows)
                torch.cat(table_values[k]) / world,  # (rows, D_k)
                weight.shape, check_invariants=False)


def _all_gather(tensor: Tensor, world: int) -> list[Tensor]:
    """Every rank's ``tensor`` (same shape on all), in rank order."""
    out = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(out, tensor)
    return out


def _gathered(parts: list[Tensor], lengths: list[int], dtype: torch.dtype,
              device: torch.device, world: int) -> list[Tensor]:
    """Every rank's ``parts`` joined (rank r's ``lengths[r]`` elements), in rank order: one
    ``all_gather`` of buffers padded to the longest."""
    buffer = torch.zeros(max(max(lengths), 1), dtype=dtype, device=device)
    mine = dist.get_rank()
    if parts:
        torch.cat(parts, out=buffer[:lengths[mine]])
    return [b[:n] for b, n in zip(_all_gather(buffer, world), lengths)]
