"""Where this process stands in a torch.distributed process group: rank, world size, device;
joining and leaving the group (launched by torchrun).

Leaving must really end the group. gloo runs every collective on worker threads of its own,
and a worker drops its reference to a finished collective's tensors after the caller has
already returned; with a tensor that Python also holds, that takes the GIL. Once the
interpreter is shutting down, a thread that asks for the GIL is ended by ``pthread_exit``,
whose unwinding through gloo's (noexcept) destructor calls ``std::terminate``: the process
aborts ("terminate called without an active exception", exit -6) after its work is done.
So a group whose threads outlive :func:`cleanup` aborts now and then at exit, more often on
a loaded machine where the worker runs late. :func:`cleanup` therefore drops the last
reference to the group, whose destructor joins its threads while the interpreter is
whole, and :func:`init_distributed` keeps torch from taking a reference that never goes
(:func:`_import_group_defaults`).
"""

from __future__ import annotations

import gc
import os
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

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
        >>> ctx = init_distributed() if "WORLD_SIZE" not in os.environ else DistContext()
        >>> ctx.rank, ctx.world_size, ctx.device in ("cpu", "cuda:0")
        (0, 1, True)
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
    _import_group_defaults()
    dist.init_process_group(backend, rank=int(os.environ["RANK"]),
                            world_size=int(os.environ["WORLD_SIZE"]))
    return current_context()


def _import_group_defaults() -> None:
    """Import the torch modules whose functions take ``group=group.WORLD`` as a default value
    before the default group exists, so that the value they keep is None.

    ``torch.distributed.nn.functional`` (imported by ``DistributedDataParallel`` through
    ``torch.distributed._shard``) evaluates ``group.WORLD`` once, at import: imported after
    ``init_process_group`` its ten functions keep the default group alive for good, and
    ``destroy_process_group`` no longer ends it (its gloo threads then live until the
    interpreter's shutdown, see the module doc).
    """
    import torch.distributed.nn.functional  # noqa: F401


def cleanup(*, timeout_s: float = 30.0) -> None:
    """Leave the process group (a no-op when none is initialized), once every rank is done,
    and end it: when this returns, the group's threads have stopped.

    The ranks first meet at a barrier, so that no rank closes its connections while a peer
    still completes the last collective with it. On gloo the barrier is
    ``monitored_barrier``, which gives up after ``timeout_s`` (a peer that failed alone, or
    is stuck elsewhere) rather than hanging; the group is destroyed either way.

    Destroying it must drop the last reference to it: its destructor then waits for gloo's
    worker threads to finish (the GIL released, so a worker can still drop the tensors of the
    last collective) and joins them. A group still referenced elsewhere keeps its threads,
    and one of them can abort the process at exit (see the module doc): a
    ``DistributedDataParallel`` left in a reference cycle holds it (hence the collection
    first), and this warns when anything else still does.
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
        group = dist.group.WORLD
        gc.collect()  # modules wrapped in DDP, in reference cycles, still hold the group
        dist.destroy_process_group()
        # two references left: `group` and getrefcount's argument
        held = group is not None and sys.getrefcount(group) > 2
        if held:
            warnings.warn("the process group is still referenced after it was destroyed (a "
                          "live DistributedDataParallel module?): its threads outlive it, "
                          "and the process may abort at exit", RuntimeWarning, stacklevel=2)
        del group  # the last reference: the group's destructor joins its threads
        # gloo's connection loop (thread "gloo_tcp_loop") was seen alive right after, about
        # once in a hundred two-rank runs of the test suite: give it a moment to end, so that
        # nothing of the group is left running when the interpreter shuts down (a group still
        # held elsewhere keeps its threads: no use waiting)
        if not held:
            _wait_for_no_group_threads(timeout_s=2.0)


def group_thread_names() -> list[str] | None:
    """Names of this process's live threads that belong to a torch.distributed process group
    (gloo's workers and connection loop, the TCPStore server), sorted; None where /proc cannot
    say. After :func:`cleanup` there are none."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    names = []
    for task in tasks.iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(n for n in names if "gloo" in n or "tcpstore" in n)


def _wait_for_no_group_threads(*, timeout_s: float) -> None:
    """Return once no thread of a process group is alive, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while group_thread_names() and time.monotonic() < deadline:
        time.sleep(0.01)
