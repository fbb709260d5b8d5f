"""Small collectives over the process group (identity without one): gather, reduce, broadcast."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


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
