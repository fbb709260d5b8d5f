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
* Data preparation (:mod:`crossrank.data.prepare`): each rank parses only its own range of the input
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

Embeddings are replicated: every rank holds the whole table. DDP all-reduces the dense
gradients; the tables with sparse gradients are left out of it and their gradients averaged
after the backward pass (:mod:`crossrank.distributed.sparse_gradients`: gloo's sparse
all-reduce, run by DDP during the backward pass, corrupted the heap under load).
When a table outgrows one device's memory, shard it instead: TorchRec's
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

from crossrank.distributed.agreement import agree, run_agreed
from crossrank.distributed.collectives import (
    all_gather_1d,
    all_gather_bytes,
    all_reduce_sum,
    broadcast_float,
    broadcast_module,
)
from crossrank.distributed.context import DistContext, cleanup, current_context, init_distributed
from crossrank.distributed.shards import assign_files, batch_share, shard_batches, shard_bounds

__all__ = ["DistContext", "agree", "all_gather_1d", "all_gather_bytes", "all_reduce_sum",
           "assign_files", "batch_share", "broadcast_float", "broadcast_module", "cleanup",
           "current_context", "init_distributed", "run_agreed", "shard_batches", "shard_bounds"]
