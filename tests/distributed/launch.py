"""Start ranks of a worker script as torchrun would (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT in the environment; gloo on 127.0.0.1), with one deadline for all of them so a
hang fails the test instead of blocking it; and what a rank checks about itself after leaving
the group (:func:`group_threads`).

The rendezvous store is hosted here, in the launching process, as torchrun's agent hosts it
(``TORCHELASTIC_USE_AGENT_STORE``: every rank connects as a client), on a port the kernel
picks for it. A port found free, closed and handed to rank 0 stays free only by luck until
rank 0 binds it, seconds later once torch is imported; any process that binds or connects
meanwhile may be given it, and rank 0 then fails with "address already in use".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from crossrank.distributed.context import group_thread_names


def group_threads() -> list[str] | None:
    """Names of this process's live threads that belong to a torch.distributed process group,
    or None where /proc cannot say (:func:`crossrank.distributed.context.group_thread_names`).

    After :func:`crossrank.distributed.cleanup` there must be none: a group whose threads
    outlive it can abort the process at exit (crossrank.distributed.context's module doc).
    """
    return group_thread_names()


def run_ranks(worker: Path, args: list[str], *, world: int = 2, timeout: float = 120.0,
              cwd: Path | None = None) -> list[tuple[int, str]]:
    """``python worker *args`` on ``world`` ranks; each rank's (exit code, stdout + stderr).

    Raises ``TimeoutError`` (after killing every rank) when they are not all done within
    ``timeout`` seconds.
    """
    # port 0: the kernel picks one, bound before any rank starts (the module doc says why)
    store = dist.TCPStore("127.0.0.1", 0, world_size=world, is_master=True,
                          wait_for_workers=False, timeout=timedelta(seconds=timeout))
    port = str(store.port)
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
               "TORCHELASTIC_USE_AGENT_STORE": "True",
               "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
               # a rank that aborts or crashes prints every thread's Python stack first
               "PYTHONFAULTHANDLER": "1"}
        procs.append(subprocess.Popen([sys.executable, str(worker), *args], env=env, cwd=cwd,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for p in procs:
            try:
                outputs.append(p.communicate(timeout=max(deadline - time.monotonic(), 0.1))[0])
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{worker.name}: {world} ranks not done within {timeout:.0f}s "
                                   "(a rank hangs)") from None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        del store  # stops listening
    return [(p.returncode, text) for p, text in zip(procs, outputs)]


def transcript(results: list[tuple[int, str]]) -> str:
    """Every rank's exit code and whole output, for an assertion's message (pytest shortens
    the repr of a list of outputs to a few hundred characters, hiding why a rank failed)."""
    return "\n".join(f"--- rank {rank} exited {code}:\n{text}"
                     for rank, (code, text) in enumerate(results))
