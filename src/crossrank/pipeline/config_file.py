"""Config files and ``--set`` overrides: reading and writing a run's configuration.

Why TOML: it is typed the way the configs are (``1e-3`` is a float, ``16`` an int, ``true`` a
bool, where YAML 1.1 readers take ``1e-3`` for a string and ``no`` for false), it carries
comments, it never runs code, and Python reads it with the standard library (``tomllib``).
TOML has no null: an option left out takes its default, and an option whose default is a
value but which should be none (``rank = "none"`` for a full-rank cross network where the
family defaults to low rank) is written as the string ``"none"``.

``--config`` also takes JSON: a JSON file of the same sections, or a ``model.json`` written by
``crossrank train``, whose ``run_config`` is the resolved configuration of that run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crossrank.errors import ConfigError
from crossrank.options import describe_fields, nearest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The sections of a TOML or JSON config file (or of a ``model.json``'s ``run_config``).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "run.toml")
        >>> _ = open(p, "w").write('[training]\\nlr = 3e-4\\n')
        >>> read_config_file(p)
        {'training': {'lr': 0.0003}}
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {str(p)!r} is not valid "
                          f"{'JSON' if p.suffix.lower() == '.json' else 'TOML'}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a table of sections, "
                          f"got {type(data).__name__}")
    if "run_config" in data:  # a model.json: the resolved run
        data = data["run_config"]
        if not isinstance(data, dict):
            raise ConfigError(f"{str(p)!r}: 'run_config' must be a table of sections")
    return _multi_valued_tables(_nulls_from_none(data), str(p))


def _multi_valued_tables(data: dict[str, Any], where: str) -> dict[str, Any]:
    """``[schema.multi_valued.NAME]`` tables (or a list of tables) as the spec strings the
    option holds, so a field's settings can be written one key per line."""
    from crossrank.data.multi_valued import spec_texts

    schema = data.get("schema")
    if not isinstance(schema, dict) or "multi_valued" not in schema:
        return data
    try:
        schema["multi_valued"] = spec_texts(schema["multi_valued"])
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: schema.multi_valued: {err}") from None
    return data


def _nulls_from_none(data: dict[str, Any]) -> dict[str, Any]:
    """``"none"`` read back as None where the option may be none and is not a string (how
    :func:`toml_text` writes a None whose default is a value, e.g. ``cross.rank``)."""
    types_ = field_types(data)

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
        if isinstance(value, str) and value.strip().lower() == "none" and key in types_:
            args = typing.get_args(types_[key])
            if type(None) in args and str not in args:
                return None
        return value

    return walk(data, "")


def field_types(run_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted key -> annotation of every option of a run, for the model family that
    ``run_dict['model']['name']`` names (default auto, whose options are DCN's)."""
    from crossrank.data.config import DataConfig, EncoderConfig, SchemaConfig
    from crossrank.models.registry import AUTO_MODEL, list_models, model_entry, options_family
    from crossrank.train.config import TrainConfig

    name = options_family((run_dict.get("model") or {}).get("name", AUTO_MODEL))
    family = model_entry(name)[0] if name in list_models() else None
    found: dict[str, Any] = {"model.name": str, "model.embedding_dim": int}
    for section, cls in (("data", DataConfig), ("schema", SchemaConfig),
                         ("encoder", EncoderConfig), ("training", TrainConfig), ("model", family)):
        if cls is None:
            continue
        for key, tp, *_ in describe_fields(cls, prefix=f"{section}."):
            found[key] = tp
    return found


def parse_value(text: str, tp: Any) -> Any:
    """A command-line string as a value of annotation ``tp``: strings stay strings, lists are
    comma-separated (or JSON), numbers and booleans are JSON, ``none`` is None where the option
    may be none and is not a string.

    Example:
        >>> parse_value("3e-4", float), parse_value("a,b", tuple[str, ...])
        (0.0003, ('a', 'b'))
        >>> parse_value("none", int | None), parse_value("[256, 128]", tuple[int, ...])
        (None, (256, 128))
    """
    args = typing.get_args(tp)
    optional = type(None) in args
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    arms = [a for a in args if a is not type(None)] if union else [tp]
    if str in arms:
        return text
    if optional and text.strip().lower() in ("none", "null"):
        return None
    if any(typing.get_origin(a) is tuple for a in arms) and not text.lstrip().startswith("["):
        item = typing.get_args(next(a for a in arms if typing.get_origin(a) is tuple))
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return tuple(p if item and item[0] is str else _json_or_text(p) for p in parts)
    value = _json_or_text(text)
    if isinstance(value, list) and any(typing.get_origin(a) is tuple for a in arms):
        return tuple(value)
    return value


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(base: Mapping[str, Any], pairs: list[str], *, flag: str = "--set",
                    prefix: str = "") -> dict[str, Any]:
    """``base`` with ``section.key=value`` overrides applied (``prefix`` is put before each key,
    e.g. ``"model."`` for ``--model-option``). Unknown keys are errors naming the nearest valid
    one; values are parsed for the option's type (:func:`parse_value`).

    Example:
        >>> apply_overrides({}, ["training.lr=3e-4", "model.deep_layers=[64]"])["training"]
        {'lr': 0.0003}
    """
    out = json.loads(json.dumps(base))  # a deep copy of plain data
    # the model family decides which model keys exist: apply model.name first
    pairs = sorted(pairs, key=lambda pair: not (prefix + pair).startswith("model.name="))
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = prefix + key.strip()
        if not sep or key == prefix:
            raise ConfigError(f"{flag} takes section.key=value, got {pair!r}")
        known = field_types(out)
        tp = known.get(key)
        if tp is None and key.rsplit(".", 1)[0] in known:  # a table's entry: lr_scales.x=30
            table_tp = known[key.rsplit(".", 1)[0]]
            if typing.get_origin(table_tp) is dict:
                tp = typing.get_args(table_tp)[1]
        if tp is None:
            raise ConfigError(_unknown_key(key, known, out) + f" ({flag} {pair})")
        node = out
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{flag} {pair}: {part!r} is not a table")
        node[last] = parse_value(text, tp)
    return out


def _unknown_key(key: str, known: Mapping[str, Any], run_dict: Mapping[str, Any]) -> str:
    """The message for an unknown dotted key, with the option it most likely means: a model
    option's name before 0.2 (``rank`` is now ``cross.rank``), an option of the same last name
    in another place, or the closest spelling."""
    from crossrank.models.registry import TASK_IS_NOT_AN_OPTION
    from crossrank.models.spec_migration import v1_option_name

    if key == "model.task":
        return TASK_IS_NOT_AN_OPTION
    section, _, rest = key.partition(".")
    near = None
    if section == "model":
        moved = v1_option_name((run_dict.get("model") or {}).get("name", "dcn"), rest)
        near = None if moved is None else (moved if moved.startswith("training.")
                                           else f"model.{moved}")
    last = key.rsplit(".", 1)[-1]
    near = near or next((k for k in sorted(known) if k.rsplit(".", 1)[-1] == last), None)
    if near is None:  # the closest spelling of the last name, then of the whole key
        by_last = {k.rsplit(".", 1)[-1]: k for k in sorted(known, reverse=True)
                   if k.partition(".")[0] == section}
        close = nearest(last, sorted(by_last))
        near = by_last[close] if close else nearest(key, sorted(known))
    return f"unknown option {key!r}" + (f"; did you mean {near!r}?" if near else "")


def toml_text(run_dict: Mapping[str, Any], defaults: Mapping[str, Any], *,
              header: str = "") -> str:
    """TOML of a run's sections. None values are left out where the default is none too (and
    written as ``"none"`` where it is not), so reading the text back gives the same run."""
    import tomli_w

    def clean(value: Any, default: Any) -> Any:
        if isinstance(value, Mapping):
            d = default if isinstance(default, Mapping) else {}
            out = {}
            for k, v in value.items():
                c = clean(v, d.get(k))
                if c is not None:
                    out[k] = c
            return out
        if value is None:
            return None if default is None else "none"
        return value

    body = tomli_w.dumps(clean(run_dict, defaults))
    return (header + "\n" if header else "") + body


def dataclass_defaults(obj: Any) -> Any:
    """Plain data of a config's defaults (used to decide which None values need writing)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dataclass_defaults(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return obj
