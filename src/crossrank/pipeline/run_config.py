"""RunConfig: everything a training run is made from, in five sections.

``data`` (:class:`~crossrank.data.config.DataConfig`), ``schema``
(:class:`~crossrank.data.config.SchemaConfig`), ``encoder``
(:class:`~crossrank.data.config.EncoderConfig`), ``model`` (:class:`ModelSection`: the family's
name, the embedding dim and the family's own config) and ``training``
(:class:`~crossrank.train.config.TrainConfig`). A config file's tables are exactly these
sections and their keys are exactly the configs' fields; the command line's flags are generated
from the same fields. :func:`build_run_config` turns plain data (the layers of a config file,
flags and ``--set`` overrides) into a checked RunConfig; ``model.json`` records
:meth:`RunConfig.to_dict` of the resolved run, which builds the same run again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crossrank.data.config import DataConfig, EncoderConfig, SchemaConfig
from crossrank.errors import ConfigError
from crossrank.models.registry import (
    AUTO_MODEL,
    TASK_IS_NOT_AN_OPTION,
    family_options,
    list_models,
    model_entry,
    options_family,
)
from crossrank.options import from_dict, nearest, to_dict
from crossrank.train.config import TrainConfig
from crossrank.train.multitask_metrics import check_task_weights, resolve_monitor

SECTIONS = ("data", "schema", "encoder", "model", "training")
MODEL_KEYS = ("name", "embedding_dim")  # the model section's own keys; the rest: the family's


@dataclass(frozen=True)
class ModelSection:
    """The model section: ``name`` (a registered family, or ``"auto"``: DCN-V2, or the linear
    model on a small data set, decided when the data is encoded:
    :mod:`crossrank.pipeline.auto_model`), ``embedding_dim`` and ``config``, the family's own
    typed config (e.g. :class:`~crossrank.models.DCNConfig`). ``auto`` takes no option: given
    one (the embedding dim too) it is ``dcn``, whose defaults it otherwise holds.

    In a config file the family's options sit in the same ``[model]`` table as ``name`` (nested
    ones in sub-tables such as ``[model.cross]``).
    """

    name: str = AUTO_MODEL
    embedding_dim: int = 16
    config: Any = None

    def to_dict(self) -> dict[str, Any]:
        if self.name == AUTO_MODEL:  # auto takes no option: one given makes it dcn
            return {"name": AUTO_MODEL}
        options = to_dict(self.config) if self.config is not None else {}
        return {"name": self.name, "embedding_dim": self.embedding_dim, **options}


def merge_tables(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, tables merged key by key (a later layer wins)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_tables(dict(out[key]), value)
        else:
            out[key] = value
    return out


def build_model_section(data: Mapping[str, Any]) -> ModelSection:
    """The model section from plain data: the family's registry defaults under the user's keys.

    Example:
        >>> build_model_section({"name": "dnn", "deep_layers": [8]}).config.deep_layers
        (8,)
        >>> build_model_section({}).name, build_model_section({"embedding_dim": 8}).name
        ('auto', 'dcn')
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"'model' must be a table of options, got {data!r}")
    name = data.get("name", AUTO_MODEL)
    if name == AUTO_MODEL and set(data) - {"name"}:
        name = options_family(name)  # an option of the network given: the network is wanted
    names = [AUTO_MODEL, *list_models()]
    if name not in names:
        near = nearest(str(name), names)
        raise ConfigError(f"unknown model {name!r}" + (f"; did you mean {near!r}?" if near else "")
                          + f" (choose one of {', '.join(names)})")
    dim = data.get("embedding_dim", 16)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"option 'model.embedding_dim' must be a positive integer, got {dim!r}")
    if "task" in data:
        raise ConfigError(TASK_IS_NOT_AN_OPTION)
    config_cls, _ = model_entry(options_family(name))
    options = family_options(options_family(name),
                             {k: v for k, v in data.items() if k not in MODEL_KEYS})
    return ModelSection(name=name, embedding_dim=dim,
                        config=from_dict(config_cls, options, where="model."))


@dataclass(frozen=True)
class RunConfig:
    """The five sections of a run; see the module doc.

    Example:
        >>> run = build_run_config({"training": {"lr": 3e-4}, "model": {"name": "dnn"}})
        >>> run.training.lr, run.model.name, run.model.config.deep_layers
        (0.0003, 'dnn', (256, 128))
        >>> build_run_config(run.to_dict()) == run
        True
    """

    data: DataConfig = field(default_factory=DataConfig)
    schema: SchemaConfig = field(default_factory=SchemaConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelSection = field(default_factory=lambda: build_model_section({}))
    training: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"data": to_dict(self.data), "schema": to_dict(self.schema),
                "encoder": to_dict(self.encoder), "model": self.model.to_dict(),
                "training": to_dict(self.training)}

    def replace(self, **sections: Any) -> RunConfig:
        return dataclasses.replace(self, **sections)


def build_run_config(*layers: Mapping[str, Any]) -> RunConfig:
    """A checked RunConfig from layers of plain data, later layers overriding earlier ones
    (a config file, then flags, then ``--set``). Unknown sections and keys are errors naming
    the nearest valid one; values are checked against each field's type and choices; the
    monitored metric must be one the task reports.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if not isinstance(layer, Mapping):
            raise ConfigError(f"a config must be a table of sections, got {layer!r}")
        for section in layer:
            if section not in SECTIONS:
                near = nearest(str(section), SECTIONS)
                raise ConfigError(f"unknown config section {section!r}"
                                  + (f"; did you mean {near!r}?" if near else "")
                                  + f" (valid: {', '.join(SECTIONS)})")
        merged = merge_tables(merged, layer)
    run = RunConfig(
        data=from_dict(DataConfig, merged.get("data"), where="data."),
        schema=from_dict(SchemaConfig, merged.get("schema"), where="schema."),
        encoder=from_dict(EncoderConfig, merged.get("encoder"), where="encoder."),
        model=build_model_section(merged.get("model", {})),
        training=from_dict(TrainConfig, merged.get("training"), where="training."),
    )
    names = run.schema.label_names() or ("label",)
    tasks = run.schema.task_names(len(names))
    resolve_monitor(run.training.monitor, tasks, names)
    check_task_weights(run.training.task_weights, len(names))
    if len(names) > 1 and run.data.negative_sampling_rate != 1.0:
        raise ConfigError(f"data.negative_sampling_rate {run.data.negative_sampling_rate} "
                          "recalibrates one label's probabilities: it takes one label, got "
                          f"{run.schema.label!r}")
    return run
