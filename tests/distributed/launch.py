"""Start ranks of a worker script as torchrun would (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT in the environment; gloo on 127.0.0.1), with one deadline for all of them so a
hang fails the test instead of blocking it; and what a rank checks about itself after leaving
the group (:func:`group_threads`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from crossrank.distributed.context import group_thread_names


def group_threads() -> list[str] | None:
    """Names of this process's live threads that belong to a torch.distributed process group,
    or None where /proc cannot say (:func:`crossrank.distributed.context.group_thread_names`).

    After :func:`crossrank.distributed.cleanup` there must be none: a group whose threads
    outlive it can abort the process at exit (crossrank.distributed.context's module doc).
    """
    return group_thread_names()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(worker: Path, args: list[str], *, world: int = 2, timeout: float = 120.0,
              cwd: Path | None = None) -> list[tuple[int, str]]:
    """``python worker *args`` on ``world`` ranks; each rank's (exit code, stdout + stderr).

    Raises ``TimeoutError`` (after killing every rank) when they are not all done within
    ``timeout`` seconds.
    """
    port = str(free_port())
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
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
    return [(p.returncode, text) for p, text in zip(procs, outputs)]


def transcript(results: list[tuple[int, str]]) -> str:
    """Every rank's exit code and whole output, for an assertion's message (pytest shortens
    the repr of a list of outputs to a few hundred characters, hiding why a rank failed)."""
    return "\n".join(f"--- rank {rank} exited {code}:\n{text}"
                     for rank, (code, text) in enumerate(results))
