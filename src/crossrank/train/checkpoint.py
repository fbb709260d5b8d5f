"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A model directory holds
    model.safetensors   the weights
    model.json          {"format", "model": spec (version, name, task, schema, config; see
                         crossrank.models.spec_migration), "train_config",
                         "metrics", "encoder" (optional), "epoch"}
    state.safetensors   optimizer tensors and RNG state, for --resume
    state.json          optimizer scalars/structure, epoch, early-stopping state
Every file is written to a temporary name and renamed, so an interrupted write never leaves a
half-written checkpoint. Loading never executes code: safetensors holds only tensors, JSON only
data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from crossrank.models.base import RankingModel
from crossrank.models.registry import model_from_spec, model_spec

FORMAT = "crossrank-model-v1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())


def save_tensors(path: Path, tensors: dict[str, Tensor]) -> None:
    from safetensors.torch import save

    dense = {k: (v.to_dense() if v.is_sparse else v).detach().contiguous().cpu()
             for k, v in tensors.items()}
    atomic_write_bytes(path, save(dense))


def load_tensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def save_model(out_dir: str | Path, model: RankingModel, *, extra: dict[str, Any]) -> None:
    """Write ``model.safetensors`` and ``model.json`` (spec plus ``extra`` metadata)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_tensors(out / "model.safetensors", model.state_dict())
    atomic_write_json(out / "model.json", {"format": FORMAT, "model": model_spec(model), **extra})


def load_model(model_dir: str | Path, *, device: str = "cpu") -> tuple[RankingModel, dict[str, Any]]:
    """Rebuild a model from a directory written by ``save_model``; returns (model, metadata)."""
    path = Path(model_dir)
    meta_path = path / "model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path}: not a crossrank model directory (no model.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: unknown format {meta.get('format')!r}, expected {FORMAT}")
    model = model_from_spec(meta["model"])
    model.load_state_dict(load_tensors(path / "model.safetensors"))
    model.to(device).eval()
    return model, meta


def _flatten_optimizer(states: list[dict]) -> tuple[dict[str, Tensor], list[dict]]:
    """Split optimizer state dicts into tensors (for safetensors) and a JSON skeleton."""
    tensors: dict[str, Tensor] = {}
    skeletons = []
    for k, sd in enumerate(states):
        state_json: dict[str, dict[str, Any]] = {}
        for pid, pstate in sd["state"].items():
            entry: dict[str, Any] = {}
            for name, value in pstate.items():
                if isinstance(value, Tensor):
                    key = f"opt{k}.{pid}.{name}"
                    tensors[key] = value
                    entry[name] = {"tensor": key, "sparse": bool(value.is_sparse)}
                else:
                    entry[name] = {"value": value}
            state_json[str(pid)] = entry
        skeletons.append({"state": state_json, "param_groups": sd["param_groups"]})
    return tensors, skeletons


def _unflatten_optimizer(tensors: dict[str, Tensor], skeletons: list[dict]) -> list[dict]:
    states = []
    for sk in skeletons:
        state = {}
        for pid, entry in sk["state"].items():
            state[int(pid)] = {name: tensors[v["tensor"]] if "tensor" in v else v["value"]
                               for name, v in entry.items()}
        states.append({"state": state, "param_groups": sk["param_groups"]})
    return states


def save_training_state(out_dir: str | Path, *, optimizer_states: list[dict],
                        progress: dict[str, Any]) -> None:
    """Optimizer and RNG state for ``--resume`` (written after the model files)."""
    out = Path(out_dir)
    tensors, skeletons = _flatten_optimizer(optimizer_states)
    tensors["rng.torch"] = torch.get_rng_state()
    save_tensors(out / "state.safetensors", tensors)
    atomic_write_json(out / "state.json", {"optimizers": skeletons, "progress": progress})


def load_training_state(model_dir: str | Path) -> tuple[list[dict], dict[str, Any]]:
    """Inverse of ``save_training_state``; restores torch's RNG state as a side effect."""
    path = Path(model_dir)
    if not (path / "state.json").is_file():
        raise FileNotFoundError(f"{path}: nothing to resume (no state.json)")
    meta = json.loads((path / "state.json").read_text())
    tensors = load_tensors(path / "state.safetensors")
    torch.set_rng_state(tensors.pop("rng.torch"))
    return _unflatten_optimizer(tensors, meta["optimizers"]), meta["progress"]
