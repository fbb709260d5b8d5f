"""The search space of ``crossrank tune``: which options a trial draws, and from what.

An entry names an option by its dotted run-config name (``training.lr``,
``model.cross.rank``, ``encoder.min_count``) and gives either a range or a list of choices:

.. code-block:: toml

    [tune.space]
    "training.lr" = {low = 1e-4, high = 1e-2, log = true}     # a float, log-uniform
    "model.cross.num_layers" = {low = 1, high = 4}             # integer bounds: an integer
    "model.cross.rank" = {low = 8, high = 64, step = 8}        # ... in steps of 8
    "model.deep_layers" = [[64], [128, 64], [256, 128]]        # choices (any option type)
    "model.norm" = ["none", "batch"]                           # "none": the option's none

The user's entries are laid over the model family's defaults (:data:`DEFAULT_SPACES`; an
entry with one choice fixes that option); ``[tune] default_space = false`` starts from an
empty space. Every entry is checked before any trial runs (:meth:`SearchSpace.check`): its
option must exist and may be tuned, its range must be a range, and the run must build with
each bound and each choice. Tuning one family at a time keeps every trial's options
meaningful: ``model.name`` is the config's, not searched.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crossrank.errors import ConfigError
from crossrank.models.registry import AUTO_MODEL, options_family
from crossrank.options import nearest
from crossrank.pipeline.auto_model import encoder_for
from crossrank.pipeline.config_file import field_types
from crossrank.pipeline.run_config import RunConfig, build_run_config

# Each trial validates on the same rows with the same metric, or their values would not
# compare; the rest say where or how to train, not what.
NOT_TUNABLE = {"model.name": "tune one model family at a time: set model.name in the config",
               "training.valid_fraction": "every trial must validate on the same rows",
               "training.monitor": "every trial must be scored by the same metric",
               "training.seed": "the study's seed is the config's (--seed)",
               "training.device": "it says where to train, not how",
               "training.threads": "it does not change results",
               "training.progress": "it does not change results",
               "training.refit_max_rows": "trials never refit",
               "training.refit": "a trial is scored on its validation rows, which a refit "
                                 "trains on (trials never refit; best.toml keeps the "
                                 "config's refit)"}
TUNABLE_SECTIONS = ("encoder", "model", "training")
TUNE_KEYS = ("space", "default_space")

_LAYER_CHOICES = [[64], [128, 64], [256, 128], [512, 256]]
# the weight average: none is the task's default (an average for regression, none for a
# binary label); the tuned MovieLens model chose 0.995, the hand-tuned Criteo one none
_COMMON = {"training.lr": {"low": 1e-4, "high": 1e-2, "log": True},
           "training.batch_size": [256, 512, 1024],
           "encoder.min_count": [1, 3, 10],
           "model.embedding_l2": {"low": 1e-7, "high": 1e-3, "log": True},
           "training.ema_decay": ["none", 0, 0.99, 0.995, 0.999]}
# sparse or dense embedding updates: the tuned MovieLens model chose dense (session 8)
_DEEP = {"model.embedding_dim": [8, 16, 32], "model.deep_layers": _LAYER_CHOICES,
         "model.dropout": {"low": 0.0, "high": 0.5}, "model.sparse_gradients": [True, False]}
# Per family: regularization that scales with the data first (rare values to OOV, embedding
# L2, dropout), then the learning rate and the architecture. DLRM's bottom MLP must end in the
# embedding dim, so its D is not searched.
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "dcn": {**_COMMON, **_DEEP, "model.structure": ["stacked", "parallel"],
            "model.cross.num_layers": {"low": 1, "high": 4},
            "model.cross.rank": ["none", 16, 64]},
    "dcn-mix": {**_COMMON, **_DEEP, "model.structure": ["stacked", "parallel"],
                "model.cross.num_layers": {"low": 1, "high": 4},
                "model.cross.rank": [16, 32, 64], "model.cross.num_experts": [2, 4]},
    "dnn": {**_COMMON, **_DEEP},
    "dlrm": {**_COMMON, "model.top_layers": _LAYER_CHOICES,
             "model.interaction": ["dot", "dcn"]},
    # the path chooses the L2 by itself: which values get a weight of their own is left
    "linear": {"encoder.min_count": [1, 2, 3, 5, 10]},
}


def tuned_family(base: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with its model family named: a study tunes one family, and ``auto`` (which
    becomes linear or dcn by the data's size) is tuned as dcn, the family its options are.

    Example:
        >>> tuned_family({"training": {"lr": 0.01}})["model"]
        {'name': 'dcn'}
    """
    model = dict(base.get("model") or {})
    model["name"] = options_family(model.get("name", AUTO_MODEL))
    return {**base, "model": model}


@dataclass(frozen=True)
class Param:
    """One entry: a float or integer range (``low``..``high``, optionally ``log`` or
    ``step``), or ``choices`` (plain values; lists and none stand in Optuna as JSON text)."""

    key: str
    kind: str  # "float", "int" or "choice"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial draws for this entry (a config value)."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log,
                                       step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        shown = [shown_choice(c) for c in self.choices]
        return self.choices[shown.index(trial.suggest_categorical(self.key, shown))]

    def stored_value(self, value: Any) -> Any | None:
        """``value`` (a config value) as Optuna would store it for this entry, or None when
        the entry cannot draw it (out of range, off the step, not a choice)."""
        if self.kind == "choice":
            shown = shown_choice(value)
            return shown if shown in [shown_choice(c) for c in self.choices] else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if self.kind == "int" and not isinstance(value, int):
            return None
        if not self.low <= value <= self.high:
            return None
        if self.step and not math.isclose((value - self.low) / self.step,
                                          round((value - self.low) / self.step)):
            return None
        return int(value) if self.kind == "int" else float(value)

    def extremes(self) -> list[Any]:
        """The values that must all build a run: both bounds, or every choice."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(str(shown_choice(c)) for c in self.choices)
        how = " log" if self.log else (f" step {self.step:g}" if self.step else "")
        return f"{self.kind} {self.low:g}..{self.high:g}{how}"


def shown_choice(value: Any) -> Any:
    """A choice as Optuna stores it: numbers, strings and booleans as they are, none as
    "none" (as a config file writes it), lists as JSON text."""
    if value is None:
        return "none"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return value


@dataclass(frozen=True)
class SearchSpace:
    """The entries of a study, in a fixed order (see the module doc)."""

    params: tuple[Param, ...]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """``{dotted key: value}`` drawn by ``trial``."""
        return {p.key: p.suggest(trial) for p in self.params}

    def decode(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """``{dotted key: config value}`` of a trial's ``params`` as Optuna stored them."""
        out = {}
        for p in self.params:
            value = stored[p.key]
            if p.kind == "choice":
                value = p.choices[[shown_choice(c) for c in p.choices].index(value)]
            out[p.key] = value
        return out

    def base_params(self, run: RunConfig) -> dict[str, Any]:
        """The entries' values in ``run`` (the study's base configuration), as Optuna params,
        for those the space can draw: the study's first trial, so the best trial is never
        worse on validation than what the user started from. An option left to its automatic
        default (``encoder.min_count``) counts as the value it resolves to for the family."""
        values = run.to_dict()
        encoder = encoder_for(run.encoder, run.model.name)
        values["encoder"] = {**values["encoder"], **encoder.encoder_options()}
        out = {}
        for p in self.params:
            node: Any = values
            for part in p.key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            stored = p.stored_value(node)
            if stored is not None:
                out[p.key] = stored
        return out

    def describe(self) -> str:
        width = max((len(p.key) for p in self.params), default=0)
        return "\n".join(f"  {p.key:<{width}}  {p.describe()}" for p in self.params)

    def to_dict(self) -> dict[str, Any]:
        """Plain data of the space (recorded with the study, compared when it continues)."""
        return {p.key: {"kind": p.kind, "low": p.low, "high": p.high, "log": p.log,
                        "step": p.step, "choices": [shown_choice(c) for c in p.choices]}
                for p in self.params}


def as_layer(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted ``{key: value}`` as nested sections (a config layer).

    Example:
        >>> as_layer({"model.cross.rank": 8, "training.lr": 0.01})
        {'model': {'cross': {'rank': 8}}, 'training': {'lr': 0.01}}
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        node = out
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = list(value) if isinstance(value, tuple) else value
    return out


def build_space(tune_table: Mapping[str, Any] | None, base: Mapping[str, Any]) -> SearchSpace:
    """The search space of a study over the run config layers ``base`` (plain data) from the
    config file's ``[tune]`` table, checked (:func:`check_entry`) with every bound and choice.

    Example:
        >>> space = build_space({"default_space": False,
        ...                      "space": {"training.lr": {"low": 1e-4, "high": 1e-2, "log": True}}},
        ...                     {"model": {"name": "dnn"}})
        >>> space.params[0].kind, space.params[0].log
        ('float', True)
        >>> build_space({"space": {"training.lr": {"low": 1, "high": 0.1}}}, {})
        Traceback (most recent call last):
        ...
        crossrank.errors.ConfigError: tune.space 'training.lr': low 1 must be below high 0.1
    """
    table = dict(tune_table or {})
    for key in table:
        if key not in TUNE_KEYS:
            near = nearest(str(key), TUNE_KEYS)
            raise ConfigError(f"unknown [tune] key {key!r}" + (f"; did you mean {near!r}?"
                              if near else "") + f" (valid: {', '.join(TUNE_KEYS)})")
    use_defaults = table.get("default_space", True)
    if not isinstance(use_defaults, bool):
        raise ConfigError(f"tune.default_space must be true or false, got {use_defaults!r}")
    user = table.get("space", {})
    if not isinstance(user, Mapping):
        raise ConfigError(f"tune.space must be a table of option = range or choices, got {user!r}")
    family = options_family((base.get("model") or {}).get("name", AUTO_MODEL))
    entries = dict(DEFAULT_SPACES.get(family, {}) if use_defaults else {})
    entries.update(user)
    known = field_types(base)
    params = tuple(check_entry(key, spec, known, base) for key, spec in entries.items())
    if not params:
        raise ConfigError("the search space is empty: give [tune.space] entries in --config "
                          "(or leave tune.default_space on)")
    return SearchSpace(params)


def check_entry(key: str, spec: Any, known: Mapping[str, Any], base: Mapping[str, Any]) -> Param:
    """One entry of ``[tune.space]`` as a :class:`Param`, or a one-line ConfigError naming it:
    an unknown or untunable option, a range that is not one, or a bound or choice with which
    the run does not build."""
    where = f"tune.space {key!r}"
    if key not in known:
        near = nearest(key, sorted(known))
        raise ConfigError(f"{where}: unknown option" + (f"; did you mean {near!r}?" if near else ""))
    if key in NOT_TUNABLE or key.partition(".")[0] not in TUNABLE_SECTIONS:
        why = NOT_TUNABLE.get(key, "the data and the schema are the study's, not a trial's")
        raise ConfigError(f"{where} cannot be searched: {why}")
    tp = known[key]
    if isinstance(spec, list | tuple):
        if not spec:
            raise ConfigError(f"{where}: an empty list of choices")
        choices = tuple(_none_for(c, tp) for c in spec)
        if len({json.dumps(shown_choice(c)) for c in choices}) < len(choices):
            raise ConfigError(f"{where}: a choice is listed twice in {list(spec)}")
        param = Param(key, "choice", choices=choices)
    elif isinstance(spec, Mapping):
        param = _range(key, spec, tp, where)
    else:
        raise ConfigError(f"{where} must be a list of choices or a table {{low, high[, log, "
                          f"step]}}, got {spec!r}")
    for value in param.extremes():
        try:
            build_run_config(base, as_layer({key: value}))
        except ConfigError as err:
            raise ConfigError(f"{where}: {shown_choice(value)} does not build a run: {err}") from None
    return param


def _none_for(value: Any, tp: Any) -> Any:
    """The string "none" as None where the option may be none (TOML has no null)."""
    if value == "none" and type(None) in typing.get_args(tp):
        return None
    return value


def _arms(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _range(key: str, spec: Mapping[str, Any], tp: Any, where: str) -> Param:
    unknown = sorted(set(spec) - {"low", "high", "log", "step"})
    if unknown or "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: a range is {{low, high[, log, step]}}, got {dict(spec)!r}")
    arms = _arms(tp)
    kind = "int" if int in arms else "float" if float in arms else None
    if kind is None:
        raise ConfigError(f"{where}: a range needs a number option; give a list of choices")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    number = int if kind == "int" else int | float
    for name, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, number)
                                  or not math.isfinite(value)):
            raise ConfigError(f"{where}: {name} must be {'an integer' if kind == 'int' else 'a number'}"
                              f", got {value!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if not low < high:
        raise ConfigError(f"{where}: low {low!r} must be below high {high!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low!r}")
    if step is not None and (step <= 0 or log):
        raise ConfigError(f"{where}: step must be positive and not with log, got {step!r}")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def default_spaces_text() -> str:
    """Each family's default search space, for ``crossrank tune --help``."""
    lines = ["default search space, by --model (override entries in [tune.space]; "
             "[tune] default_space = false starts empty):"]
    for family in DEFAULT_SPACES:
        lines += [f"  {family}:", *("  " + line for line in
                                    build_space(None, {"model": {"name": family}})
                                    .describe().splitlines())]
    return "\n".join(lines)
