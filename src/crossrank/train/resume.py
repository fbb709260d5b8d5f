"""Reading the state a run resumes from (``--resume``), every rank agreeing on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from crossrank.distributed import DistContext, all_reduce_sum, broadcast_float
from crossrank.train.checkpoint import load_tensors, load_training_state


def read_resume_state(out_dir: Path, world: DistContext) -> tuple[
        list[dict[Any, Any]], dict[str, Any], dict[str, Tensor], dict[str, Tensor]]:
    """The optimizer states, progress, weight average and latest weights saved in ``out_dir``
    (:func:`~crossrank.train.checkpoint.load_training_state`, ``latest.safetensors``).

    Every rank reads rank 0's files. A rank that cannot (``out_dir`` not shared) or that reads
    another state would hang the others in the first all-reduce or train from other weights:
    the ranks agree first, and fail on every rank with one line saying why.
    """
    problem: Exception | None = None
    try:
        states, progress, average = load_training_state(out_dir)
        weights = load_tensors(out_dir / "latest.safetensors")
    except (OSError, ValueError) as err:
        problem = err
    if world.is_distributed:
        epoch = -1.0 if problem is not None else float(progress["epoch"])
        epoch_of_rank0 = broadcast_float(epoch)  # a collective: every rank calls it
        behind = float(problem is not None or epoch != epoch_of_rank0)
        failed = int(all_reduce_sum([behind])[0])
        if failed:
            mine = f"rank {world.rank}: " + (
                str(problem) if problem is not None else f"epoch {epoch:g}")
            raise RuntimeError(
                f"cannot resume: {failed} of {world.world_size} ranks did not read the state "
                f"rank 0 resumes from in {str(out_dir)!r} ({mine}); out_dir must be on a file "
                "system that every rank shares")
    if problem is not None:
        raise problem
    return states, progress, average, weights
