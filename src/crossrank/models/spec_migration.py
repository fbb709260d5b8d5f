"""Model specs written by earlier versions of crossrank, read as today's.

A model spec is the JSON object ``model.json`` holds under ``"model"``, and what
:func:`~crossrank.models.model_from_spec` rebuilds a model from. Its versions:

* **1** (no ``"version"`` key; crossrank up to the model-parts change):
  ``{"name", "schema", "config"}`` with the cross network's options flat in the config
  (DCN: ``num_cross_layers``, ``cross_kind``, ``rank``, ``num_experts``, ``diag_scale``,
  ``cross_activation``, ``use_bias``, ``cross_l2``, ``backend``; DLRM: ``dcn_num_layers``,
  ``dcn_rank``, ``dcn_diag_scale``, ``cross_l2``), the first-order and factorization machine
  options flat in DCN's config, ``task`` inside the config, the training-only
  ``first_order_lr_scale``, and the schema's categorical fields under ``"sparse"``.
* **2**: ``{"version": 2, "name", "task", "schema", "config"}``: the cross network under
  ``config.cross``, the additive terms under ``config.terms``, the task beside the config
  (set once, by the schema's task) and the schema's ``"categorical"``.

:func:`migrate_spec` turns any known version into the current one; weights need no migration
(every version keeps the same state_dict keys). Keys a migration does not know are left in
place, so the strict config check still names them.

Example:
    >>> v1 = {"name": "dlrm", "schema": {"dense": ["a"], "sparse": ["u"], "vocab_sizes": [3]},
    ...       "config": {"interaction": "dcn", "dcn_rank": 2, "task": "regression"}}
    >>> v2 = migrate_spec(v1)
    >>> v2["version"], v2["task"], v2["config"]["cross"], v2["schema"]["categorical"]
    (2, 'regression', {'rank': 2}, ['u'])
    >>> v2["config"]["terms"]  # version 1: no FM term unless asked for (today's default: one)
    {'fm_dim': 0, 'fm_l2': 0.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crossrank.errors import ModelFileError

SPEC_VERSION = 2
SPEC_KEYS = ("version", "name", "task", "schema", "config")

# version-1 config key -> key of the nested section, per family
_CROSS_V1 = {
    "dcn": {"num_cross_layers": "num_layers", "cross_kind": "kind", "rank": "rank",
            "num_experts": "num_experts", "diag_scale": "diag_scale",
            "cross_activation": "activation", "use_bias": "use_bias", "cross_l2": "l2",
            "backend": "backend"},
    "dlrm": {"dcn_num_layers": "num_layers", "dcn_rank": "rank",
             "dcn_diag_scale": "diag_scale", "cross_l2": "l2"},
}
_CROSS_V1["dcn-mix"] = _CROSS_V1["dcn"]
_TERMS_V1 = ("first_order", "first_order_l2", "fm_dim", "fm_l2")
_TRAINING_ONLY_V1 = ("first_order_lr_scale",)  # a learning-rate policy: now lr_scales


def v1_option_name(family: str, key: str) -> str | None:
    """Today's name of a version-1 option of ``family``, for error messages; None if none.

    Example:
        >>> v1_option_name("dlrm", "dcn_rank"), v1_option_name("dcn", "first_order_lr_scale")
        ('cross.rank', 'training.lr_scales.first_order')
    """
    if key in _CROSS_V1.get(family, {}):
        return f"cross.{_CROSS_V1[family][key]}"
    if key in _TERMS_V1:
        return f"terms.{key}"
    if key == "first_order_lr_scale":
        return "training.lr_scales.first_order"
    return None


def spec_version(spec: Mapping[str, Any]) -> int:
    """The version of a spec: its ``"version"``, or 1 when it has none."""
    version = spec.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"model spec version must be a positive integer, got {version!r}")
    if version > SPEC_VERSION:
        raise ModelFileError(f"model spec version {version} is newer than this crossrank reads "
                             f"({SPEC_VERSION}); upgrade crossrank to load this model")
    return version


def migrate_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` in the current version (:data:`SPEC_VERSION`)."""
    if not isinstance(spec, Mapping):
        raise ModelFileError(f"a model spec must be an object, got {type(spec).__name__}")
    known = SPEC_KEYS if "version" in spec else ("name", "schema", "config")
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise ModelFileError(f"unknown model spec key(s) {unknown}; expected {list(known)}")
    missing = [k for k in known if k not in spec and k != "version"]
    if missing:
        raise ModelFileError(f"model spec lacks {missing}")
    out = dict(spec)
    if spec_version(spec) == 1:
        out = _v1_to_v2(out)
    return out


def _v1_to_v2(spec: dict[str, Any]) -> dict[str, Any]:
    name = spec["name"]
    if not isinstance(spec["config"], Mapping) or not isinstance(spec["schema"], Mapping):
        raise ModelFileError("model spec config and schema must be objects")
    config = dict(spec["config"])
    task = config.pop("task", "binary")
    for key in _TRAINING_ONLY_V1:
        config.pop(key, None)
    cross_keys = _CROSS_V1.get(name, {})
    cross = {cross_keys[k]: config.pop(k) for k in list(config) if k in cross_keys}
    if name == "dlrm" and "backend" in config:
        cross["backend"] = config["backend"]  # one option served the dot and cross kernels
    terms = {k: config.pop(k) for k in list(config) if k in _TERMS_V1}
    if cross:
        config["cross"] = cross
    # version 1 had no factorization machine unless asked for, and no penalty on it (today's
    # defaults, fm_dim none and fm_l2 0.05, would add one to a saved model)
    config["terms"] = {"fm_dim": 0, "fm_l2": 0.0, **terms}
    schema = {("categorical" if k == "sparse" else k): v for k, v in spec["schema"].items()}
    return {"version": 2, "name": name, "task": task, "schema": schema, "config": config}
