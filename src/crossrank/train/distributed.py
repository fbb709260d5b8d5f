"""Deprecated location: the process-group code lives in :mod:`crossrank.distributed` (a leaf
that ``data`` and ``train`` both use). These names stay importable from here."""

from crossrank.distributed import (  # noqa: F401
    DistContext,
    all_gather_1d,
    all_gather_bytes,
    all_reduce_sum,
    batch_share,
    broadcast_float,
    broadcast_module,
    cleanup,
    current_context,
    init_distributed,
    shard_batches,
    shard_bounds,
)
