"""Model registry: build a model by name from a schema and a config, and back from a dict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crossrank.models.base import RankingModel
from crossrank.models.config import DCNConfig, DLRMConfig, DNNConfig, from_dict, to_dict
from crossrank.models.dcn import DCN
from crossrank.models.dlrm import DLRM
from crossrank.models.dnn import DNN
from crossrank.models.schema import FeatureSchema


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[[FeatureSchema, Any], RankingModel]
    config_cls: type
    defaults: dict[str, Any]
    summary: str


_REGISTRY: dict[str, ModelEntry] = {
    "dcn": ModelEntry(DCN, DCNConfig, {}, "DCN-V2 (full rank by default; rank=r for low rank)"),
    "dcn-mix": ModelEntry(DCN, DCNConfig, {"rank": 32, "num_experts": 4},
                          "DCN-Mix: mixture of low-rank cross experts"),
    "dlrm": ModelEntry(DLRM, DLRMConfig, {}, "DLRM with dot, dcn or projection interaction"),
    "dnn": ModelEntry(DNN, DNNConfig, {}, "plain deep network baseline"),
}


def list_models() -> list[str]:
    """Registered model names.

    Example:
        >>> list_models()
        ['dcn', 'dcn-mix', 'dlrm', 'dnn']
    """
    return sorted(_REGISTRY)


def build_model(name: str, schema: FeatureSchema, config: dict[str, Any] | Any = None) -> RankingModel:
    """Build model ``name``; ``config`` is a dict of options (over the model's defaults) or a
    config dataclass. Unknown names and options raise ``ValueError``.

    Example:
        >>> s = FeatureSchema(dense=("a",), sparse=("u",), vocab_sizes=(3,), embedding_dim=2)
        >>> build_model("dcn", s, {"num_cross_layers": 1}).config.num_cross_layers
        1
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()}")
    entry = _REGISTRY[name]
    cfg: Any
    if config is None or isinstance(config, dict):
        cfg = from_dict(entry.config_cls, {**entry.defaults, **(config or {})})
    elif isinstance(config, entry.config_cls):
        cfg = config
    else:
        raise TypeError(f"config for {name!r} must be a dict or {entry.config_cls.__name__}, "
                        f"got {type(config).__name__}")
    model = entry.build(schema, cfg)
    model.model_name = name  # type: ignore[assignment]
    return model


def model_spec(model: RankingModel) -> dict[str, Any]:
    """JSON-ready description that ``model_from_spec`` rebuilds the model from."""
    return {"name": getattr(model, "model_name", type(model).__name__.lower()),
            "schema": model.schema.to_dict(), "config": to_dict(model.config)}


def model_from_spec(spec: dict[str, Any]) -> RankingModel:
    unknown = sorted(set(spec) - {"name", "schema", "config"})
    if unknown:
        raise ValueError(f"unknown model spec key(s) {unknown}")
    return build_model(spec["name"], FeatureSchema.from_dict(spec["schema"]), dict(spec["config"]))


def model_entry(name: str) -> tuple[type, dict[str, Any]]:
    """The config class of family ``name`` and the registry's defaults over it.

    Example:
        >>> model_entry("dnn")[0].__name__
        'DNNConfig'
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()}")
    entry = _REGISTRY[name]
    return entry.config_cls, dict(entry.defaults)
