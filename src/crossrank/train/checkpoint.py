"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A model directory holds
    model.safetensors   the weights
    model.json          {"format", "model": spec (version, name, task, schema, config; see
                         crossrank.models.spec_migration), "train_config",
                         "metrics", "encoder" (optional), "epoch",
                         "sha256": {file: SHA-256} of model.safetensors and of every other
                         file listed by the caller (crossrank train: the encoder's files)}
    state.safetensors   optimizer tensors and RNG state, for --resume
    state.json          optimizer scalars/structure, epoch, early-stopping state, and the
                         SHA-256 of state.safetensors and latest.safetensors
Every file is written to a temporary name and renamed, so an interrupted write never leaves a
half-written checkpoint. Loading never executes code: safetensors holds only tensors, JSON only
data.

Loading checks before use (each failure one :class:`~crossrank.errors.ModelFileError` line
naming the file): ``model.json`` is a JSON object with the keys it needs; every file it
records a SHA-256 of still has those bytes (a directory written before checksums were
recorded has none, and is loaded unverified); the weights are a readable safetensors file
that fits the model the spec describes, and every weight is finite.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from crossrank.errors import CrossrankError, ModelFileError
from crossrank.models.base import RankingModel
from crossrank.models.registry import model_from_spec, model_spec
from crossrank.safe_io import (
    atomic_write_bytes,
    file_error,
    read_json_object,
    relative_file,
    sha256_bytes,
    verify_sha256,
)

__all__ = ["CHECKSUMS", "FORMAT", "atomic_write_bytes", "atomic_write_json", "load_model",
           "load_tensors", "load_training_state", "read_model_json", "save_model",
           "save_tensors", "save_training_state", "verify_checksums"]

FORMAT = "crossrank-model-v1"
_AVERAGE = "average."  # state.safetensors' prefix of the weight average's tensors
CHECKSUMS = "sha256"  # key of model.json / state.json: {file relative to the directory: hex}


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())


def save_tensors(path: Path, tensors: dict[str, Tensor]) -> str:
    """Write ``tensors`` to ``path`` (whole or not at all); returns the file's SHA-256."""
    from safetensors.torch import save

    dense = {k: (v.to_dense() if v.is_sparse else v).detach().contiguous().cpu()
             for k, v in tensors.items()}
    data = save(dense)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def load_tensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file; a one-line ModelFileError naming the file when it
    is missing, empty, cut short or its header is damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing") from None
    except (SafetensorError, RuntimeError, ValueError) as err:
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        raise ModelFileError(f"{path}: not a readable safetensors file, damaged or cut short "
                             f"({detail})") from None


def save_model(out_dir: str | Path, model: RankingModel, *, extra: dict[str, Any]) -> str:
    """Write ``model.safetensors`` and ``model.json`` (spec plus ``extra`` metadata). The
    SHA-256 of the weights joins those of ``extra["sha256"]`` (other files of the directory,
    named relative to it) under ``"sha256"``; returns the weights' SHA-256."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    digest = save_tensors(out / "model.safetensors", model.state_dict())
    checksums = {**extra.get(CHECKSUMS, {}), "model.safetensors": digest}
    atomic_write_json(out / "model.json", {"format": FORMAT, "model": model_spec(model), **extra,
                                           CHECKSUMS: checksums})
    return digest


def read_model_json(model_dir: str | Path) -> dict[str, Any]:
    """``model.json`` of a model directory, checked: a JSON object of this format with a
    ``"model"`` object and well-formed checksums (else one line naming the file and key)."""
    path = Path(model_dir)
    meta_path = path / "model.json"
    if not meta_path.is_file():
        raise ModelFileError(f"{path}: not a crossrank model directory (no model.json)")
    meta = read_json_object(meta_path)
    if "format" not in meta:
        raise ModelFileError(f"{meta_path}: missing key 'format' (not a crossrank model.json)")
    if meta["format"] != FORMAT:
        raise ModelFileError(f"{meta_path}: unknown format {meta['format']!r}, expected {FORMAT}")
    if "model" not in meta:
        raise ModelFileError(f"{meta_path}: missing key 'model'")
    if not isinstance(meta["model"], dict):
        raise ModelFileError(f"{meta_path}: key 'model' must be an object")
    checksums = meta.get(CHECKSUMS, {})
    if not isinstance(checksums, dict) or not all(
            isinstance(v, str) and len(v) == 64 for v in checksums.values()):
        raise ModelFileError(f"{meta_path}: key {CHECKSUMS!r} must map file names to SHA-256 "
                             "digests (64 hex digits)")
    return meta


def verify_checksums(directory: Path, meta: dict[str, Any], *, meta_path: Path) -> None:
    """Check every file ``meta["sha256"]`` records against its SHA-256 (none recorded: none
    checked, as in directories written before crossrank recorded them)."""
    for name, digest in sorted(meta.get(CHECKSUMS, {}).items()):
        file = relative_file(directory, name, source=meta_path, key=f"{CHECKSUMS} entry")
        verify_sha256(file, digest, recorded_in=meta_path)


def load_model(model_dir: str | Path, *, device: str = "cpu") -> tuple[RankingModel, dict[str, Any]]:
    """Rebuild a model from a directory written by ``save_model``; returns (model, metadata).
    Every file model.json records a checksum of is verified first (see the module doc)."""
    path = Path(model_dir)
    meta = read_model_json(path)
    meta_path = path / "model.json"
    verify_checksums(path, meta, meta_path=meta_path)
    try:
        model = model_from_spec(meta["model"])
    except (CrossrankError, KeyError, TypeError, ValueError) as err:
        raise file_error(meta_path, err, key="model") from None
    weights_path = path / "model.safetensors"
    weights = load_tensors(weights_path)
    _check_weights(model, weights, weights_path)
    model.load_state_dict(weights)
    model.to(device).eval()
    return model, meta


def _check_weights(model: RankingModel, weights: dict[str, Tensor], path: Path) -> None:
    """One line naming ``path`` when the weights do not fit ``model`` or are not finite."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ModelFileError(f"{path}: does not fit the model model.json describes (missing "
                             f"tensors {missing[:3]}, unexpected {unexpected[:3]})")
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ModelFileError(f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, the "
                                 f"model model.json describes needs {tuple(expected[name].shape)}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelFileError(f"{path}: tensor {name!r} holds {bad} NaN or infinite values "
                                 "(did training diverge?); refusing to use it")


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
                        progress: dict[str, Any], latest: Callable[[], str],
                        average: dict[str, Tensor] | None = None) -> None:
    """Optimizer and RNG state for ``--resume``: ``state.safetensors``, then ``latest()``
    (which writes ``latest.safetensors`` and returns its SHA-256), then ``state.json`` with
    both checksums, last, so a run cut short leaves the state of the epoch before.
    ``average``: the weight average's state (``training.ema_decay``; a sparse table's as its
    residual, :meth:`~crossrank.train.averaging.WeightAverage.state_dict`), kept in
    ``state.safetensors`` beside the optimizer's."""
    out = Path(out_dir)
    tensors, skeletons = _flatten_optimizer(optimizer_states)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors.update({_AVERAGE + name: value for name, value in (average or {}).items()})
    checksums = {"state.safetensors": save_tensors(out / "state.safetensors", tensors),
                 "latest.safetensors": latest()}
    atomic_write_json(out / "state.json", {"optimizers": skeletons, "progress": progress,
                                           CHECKSUMS: checksums})


def load_training_state(
        model_dir: str | Path) -> tuple[list[dict], dict[str, Any], dict[str, Tensor]]:
    """Inverse of ``save_training_state``: the optimizer states, the progress and the weight
    average ({} when none was kept); restores torch's RNG state as a side effect. The
    state files (and ``latest.safetensors``) are checked against the SHA-256 recorded."""
    path = Path(model_dir)
    state_path = path / "state.json"
    if not state_path.is_file():
        raise FileNotFoundError(f"{path}: nothing to resume (no state.json)")
    meta = read_json_object(state_path)
    checksums = meta.get(CHECKSUMS, {})
    if not isinstance(checksums, dict):
        raise ModelFileError(f"{state_path}: key {CHECKSUMS!r} must be an object")
    verify_checksums(path, meta, meta_path=state_path)
    tensors = load_tensors(path / "state.safetensors")
    try:
        rng = tensors.pop("rng.torch")
        average = {name[len(_AVERAGE):]: tensors.pop(name) for name in list(tensors)
                   if name.startswith(_AVERAGE)}
        states = _unflatten_optimizer(tensors, meta["optimizers"])
        progress = meta["progress"]
    except (KeyError, TypeError, ValueError) as err:
        raise file_error(state_path, err) from None
    torch.set_rng_state(rng)
    return states, progress, average
