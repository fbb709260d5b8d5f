"""Model registry: build a model by name from a schema and a config, and back from a spec.

A spec (:func:`model_spec`) is ``{"version", "name", "task", "schema", "config"}``: what
``model.json`` holds and :func:`model_from_spec` reads; older specs are migrated first
(:mod:`crossrank.models.spec_migration`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crossrank.errors import ConfigError
from crossrank.models.base import RankingModel
from crossrank.models.config import DCNConfig, DLRMConfig, DNNConfig, LinearConfig, MultiTaskConfig
from crossrank.models.dcn import DCN
from crossrank.models.dlrm import DLRM
from crossrank.models.dnn import DNN
from crossrank.models.linear import LinearModel
from crossrank.models.multitask import build_multitask
from crossrank.models.schema import FeatureSchema
from crossrank.models.spec_migration import SPEC_VERSION, migrate_spec, v1_option_name
from crossrank.options import describe_fields, from_dict, nearest, to_dict

# The default model name: DCN-V2 with its defaults, or the linear model on a small data set
# (crossrank.pipeline.auto_model). Its options are DCN's: a network option given means DCN.
AUTO_MODEL = "auto"
AUTO_OPTIONS_FAMILY = "dcn"
# Below this many training rows a tuned logistic regression beats the network's defaults on
# both metrics (the Criteo learning curve of benchmarks/defaults_study.py --data criteo-N,
# RESULTS.md "small data"; above it the crossing depends on the data: ~8,000 rows on Criteo,
# 12,000-20,000 on the synthetic data, above 16,000 on MovieLens): auto then means linear.
AUTO_LINEAR_ROWS = 3_000

TASK_IS_NOT_AN_OPTION = ("task is not a model option: it is set once, by the schema's task "
                         "(--task)")


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[..., RankingModel]
    config_cls: type
    defaults: dict[str, Any]
    summary: str


_REGISTRY: dict[str, ModelEntry] = {
    # a low-rank cross of 2 layers: the full-rank 3-layer default of the paper (cross.rank =
    # none) fits a few thousand rows' noise (benchmarks/defaults_study.py, README Defaults)
    "dcn": ModelEntry(DCN, DCNConfig, {"cross": {"rank": 16, "num_layers": 2}},
                      "DCN-V2 (low rank 16, 2 cross layers by default; cross.rank=none for "
                      "full rank)"),
    "dcn-mix": ModelEntry(DCN, DCNConfig, {"cross": {"rank": 32, "num_experts": 4}},
                          "DCN-Mix: mixture of low-rank cross experts"),
    # no FM term, and no penalty on one a user asks for: DLRM's defaults, the benchmark
    # shape's, stay as they were (a partial terms table is merged over these)
    "dlrm": ModelEntry(DLRM, DLRMConfig, {"terms": {"fm_dim": 0, "fm_l2": 0.0}},
                       "DLRM with dot, dcn or projection interaction"),
    "dnn": ModelEntry(DNN, DNNConfig, {}, "plain deep network baseline"),
    "linear": ModelEntry(LinearModel, LinearConfig, {},
                         "logistic (linear) regression, its L2 chosen on validation; auto's "
                         f"choice below {AUTO_LINEAR_ROWS:,} training rows"),
}


def list_models() -> list[str]:
    """Registered model names.

    Example:
        >>> list_models()
        ['dcn', 'dcn-mix', 'dlrm', 'dnn', 'linear']
    """
    return sorted(_REGISTRY)


def options_family(name: str) -> str:
    """The family whose options model ``name`` takes: its own, DCN's for ``"auto"``.

    Example:
        >>> options_family("auto"), options_family("dnn")
        ('dcn', 'dnn')
    """
    return AUTO_OPTIONS_FAMILY if name == AUTO_MODEL else name


def _entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        near = nearest(str(name), list_models())
        raise ConfigError(f"unknown model {name!r}" + (f"; did you mean {near!r}?" if near else "")
                          + f" (choose one of {', '.join(list_models())})")
    return _REGISTRY[name]


def model_entry(name: str) -> tuple[type, dict[str, Any]]:
    """The config class of family ``name`` and the registry's defaults over it.

    Example:
        >>> model_entry("dcn-mix")
        (<class 'crossrank.models.config.DCNConfig'>, {'cross': {'rank': 32, 'num_experts': 4}})
    """
    entry = _entry(name)
    return entry.config_cls, merge_options(entry.defaults, {})


def merge_options(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` over ``base``: nested tables merge key by key, and a dotted key
    (``"cross.rank"``) addresses a nested option.

    Example:
        >>> merge_options({"cross": {"rank": 32, "num_experts": 4}},
        ...               {"cross.rank": 8, "deep_layers": [16]})
        {'cross': {'rank': 8, 'num_experts': 4}, 'deep_layers': [16]}
    """
    out = {k: merge_options(v, {}) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, value in overrides.items():
        head, dot, rest = str(key).partition(".")
        if dot:
            value, key = {rest: value}, head
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_options(out[key], value)
        else:
            out[key] = merge_options(value, {}) if isinstance(value, Mapping) else value
    return out


def family_options(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` over family ``name``'s registry defaults (:func:`merge_options`), less a
    default the overrides make impossible: DCN's low-rank default ``cross.rank`` is dropped
    when ``cross.kind`` is "vector" (DCN v1 has no rank) and the rank was not given.

    Example:
        >>> family_options("dcn", {"cross.kind": "vector"})
        {'cross': {'num_layers': 2, 'kind': 'vector'}}
    """
    out = merge_options(_entry(name).defaults, overrides)
    given = merge_options({}, overrides).get("cross")
    cross = out.get("cross")
    if isinstance(cross, dict) and cross.get("kind") == "vector" \
            and not (isinstance(given, Mapping) and "rank" in given):
        cross.pop("rank", None)
    return out


def build_model(name: str, schema: FeatureSchema, config: Mapping[str, Any] | Any = None, *,
                task: str | Sequence[str] = "binary") -> RankingModel:
    """Build model ``name`` for ``task``; ``config`` is a dict of options over the registry's
    defaults (nested tables or dotted keys, ``{"cross.rank": 8}``) or a config dataclass.
    Unknown names and options raise :class:`~crossrank.errors.ConfigError`. Several tasks
    (one per label) build a :class:`~crossrank.models.multitask.MultiTaskModel` over the
    family's body, as ``config.multitask`` says; its options with one task are an error.

    Example:
        >>> s = FeatureSchema(dense=("a",), categorical=("u",), vocab_sizes=(3,), embedding_dim=2)
        >>> cross = build_model("dcn-mix", s, {"cross.num_layers": 1}).config.cross
        >>> cross.num_layers, cross.rank, cross.num_experts
        (1, 32, 4)
    """
    entry = _entry(name)
    cfg: Any
    if config is None or isinstance(config, Mapping):
        _check_names(name, entry.config_cls, config or {})
        cfg = from_dict(entry.config_cls, family_options(name, config or {}))
    elif isinstance(config, entry.config_cls):
        cfg = config
    else:
        raise TypeError(f"config for {name!r} must be a dict or {entry.config_cls.__name__}, "
                        f"got {type(config).__name__}")
    tasks = (task,) if isinstance(task, str) else tuple(task)
    if len(tasks) > 1 and not hasattr(cfg, "multitask"):
        raise ConfigError(f"model {name!r} takes one label, got {len(tasks)}: train one "
                          "model per label, or a network (--model dcn) for several")
    if len(tasks) > 1:
        model: RankingModel = build_multitask(entry.build, schema, cfg, tasks)
    else:
        if getattr(cfg, "multitask", MultiTaskConfig()) != MultiTaskConfig():
            raise ConfigError("multitask.* options are for several labels (--label a,b); "
                              f"this model has one task, got multitask={to_dict(cfg.multitask)}")
        model = entry.build(schema, cfg, task=tasks[0] if tasks else "")
    model.model_name = name
    return model


def _check_names(family: str, config_cls: type, options: Mapping[str, Any]) -> None:
    """Name today's option for ``task`` and the options that moved into a section (``rank``
    is ``cross.rank``); everything else is left to the strict ``from_dict``."""
    if "task" in options:
        raise ConfigError(TASK_IS_NOT_AN_OPTION)
    fields = [f.name for f in dataclasses.fields(config_cls)]
    leaves = [row[0] for row in describe_fields(config_cls)]
    for key in map(str, options):
        if key.partition(".")[0] not in fields:
            new = v1_option_name(family, key) or nearest(key, leaves)
            if new is not None:
                raise ConfigError(f"unknown option '{key}'; did you mean '{new}'? "
                                  f"(valid: {', '.join(leaves)})")


def model_spec(model: RankingModel) -> dict[str, Any]:
    """JSON-ready description that :func:`model_from_spec` rebuilds the model from.

    Example:
        >>> s = FeatureSchema(dense=("a",))
        >>> sorted(model_spec(build_model("dnn", s, task="regression")))
        ['config', 'name', 'schema', 'task', 'version']
    """
    task: str | list[str] = model.task if len(model.tasks) == 1 else list(model.tasks)
    return {"version": SPEC_VERSION, "name": model.model_name, "task": task,
            "schema": model.schema.to_dict(), "config": to_dict(model.config)}


def model_from_spec(spec: Mapping[str, Any]) -> RankingModel:
    """The model a spec describes (any version; see :mod:`crossrank.models.spec_migration`).
    The weights are not part of the spec."""
    current = migrate_spec(spec)
    return build_model(current["name"], FeatureSchema.from_dict(current["schema"]),
                       dict(current["config"]), task=current["task"])
