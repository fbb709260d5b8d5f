"""``crossrank train``'s options, generated from the run's config classes and the registries.

Each field of the data, schema, encoder and training sections (and the model's ``name`` and
``embedding_dim``) becomes one flag whose help, default and choices are the field's; nothing
about an option is written here but its flag's name where it differs from the field's. The
model family's own options (they depend on ``--model``) are set with ``--model-option`` or
``--set model.KEY=VALUE`` and listed, per family, at the end of ``--help``.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

from crossrank.options import describe_fields

# flag names that differ from "--" + the field name with "_" -> "-"
_FLAG_NAMES = {"data.path": "--data", "schema.file": "--schema", "model.name": "--model"}
# options only a config file or --set can give (a table of values)
_NO_FLAG = {"training.lr_scales"}


def _sections() -> list[tuple[str, type]]:
    from crossrank.data.config import DataConfig, EncoderConfig, SchemaConfig
    from crossrank.train.config import TrainConfig

    return [("data", DataConfig), ("schema", SchemaConfig), ("encoder", EncoderConfig),
            ("training", TrainConfig)]


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


def _flag(key: str) -> str:
    return _FLAG_NAMES.get(key, "--" + key.split(".", 1)[1].replace("_", "-"))


def config_flags() -> list[tuple[str, str, Any, str, Any, Any]]:
    """``(dotted key, flag, type, help, default, choices)`` of every generated flag."""
    from crossrank.models.registry import AUTO_LINEAR_ROWS, AUTO_MODEL, list_models

    rows: list[tuple[str, str, Any, str, Any, Any]] = []
    for section, cls in _sections():
        for key, tp, help_text, default, choices in describe_fields(cls, prefix=f"{section}."):
            if key not in _NO_FLAG:
                rows.append((key, _flag(key), tp, help_text, default, choices))
    rows.append(("model.name", "--model", str, "model family (its options: --model-option, "
                 "listed below); auto: dcn, or linear on fewer than "
                 f"{AUTO_LINEAR_ROWS:,} training rows when no model option is given",
                 AUTO_MODEL, (AUTO_MODEL, *list_models())))
    rows.append(("model.embedding_dim", "--embedding-dim", int, "embedding dim D", 16, None))
    flags = [r[1] for r in rows]
    duplicated = {f for f in flags if flags.count(f) > 1}
    if duplicated:  # two sections' fields map to one flag: a bug in _FLAG_NAMES
        raise RuntimeError(f"generated flags collide: {sorted(duplicated)}")
    return rows


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config option; flags not given stay out of the namespace (SUPPRESS), so
    a config file's value is overridden only by flags the user typed."""
    groups: dict[str, Any] = {}
    for key, flag, tp, help_text, default, choices in config_flags():
        section = key.split(".", 1)[0]
        group = groups.get(section) or parser.add_argument_group(f"{section} options "
                                                                  f"([{section}] in --config)")
        groups[section] = group
        dest = "cfg:" + key
        if tp is bool:
            if default:
                group.add_argument("--no-" + flag[2:], dest=dest, action="store_const",
                                   const=False, default=argparse.SUPPRESS,
                                   help=f"{help_text}: turn off (default: on)")
            else:
                group.add_argument(flag, dest=dest, action="store_const", const=True,
                                   default=argparse.SUPPRESS, help=f"{help_text} (default: off)")
            continue
        shown = [c for c in choices if c is not None] if choices else None
        metavar = None if shown else _metavar(tp)
        group.add_argument(flag, dest=dest, default=argparse.SUPPRESS, choices=shown,
                           metavar=metavar, help=f"{help_text} (default: {_show(default)})")


def _metavar(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    base = args[0]
    if typing.get_origin(base) is tuple:
        return "A,B,..."
    return {int: "INT", float: "X", str: "TEXT"}.get(base, "VALUE")


def flags_given(namespace: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config options the user typed, as sections of parsed values."""
    from crossrank.pipeline.config_file import parse_value

    types = {key: tp for key, _, tp, *_ in config_flags()}
    out: dict[str, dict[str, Any]] = {}
    for dest, value in vars(namespace).items():
        if not dest.startswith("cfg:"):
            continue
        key = dest[4:]
        section, name = key.split(".", 1)
        out.setdefault(section, {})[name] = value if isinstance(value, bool) else \
            parse_value(value, types[key])
    return out


def model_options_epilog() -> str:
    """Each model family's options with their defaults, for the end of ``train --help``."""
    from crossrank.models.registry import list_models, model_entry
    from crossrank.pipeline.run_config import build_model_section

    lines = ["model family options, by --model (set with --model-option KEY=VALUE or "
             "--set model.KEY=VALUE; [model] in --config):"]
    for name in list_models():
        section = build_model_section({"name": name})
        values = section.to_dict()
        lines.append(f"  {name}:")
        for key, _, help_text, _, choices in describe_fields(model_entry(name)[0]):
            value: Any = values
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            choice = f"; one of {', '.join(_show(c) for c in choices)}" if choices else ""
            text = f" ({help_text}{choice})" if help_text else ""
            lines.append(f"    {key} = {_show(tuple(value) if isinstance(value, list) else value)}"
                         f"{text}")
    return "\n".join(lines)


def add_option_flags(parser: argparse.ArgumentParser, cls: type, *, title: str) -> None:
    """One flag per option of the flat config ``cls`` (``max_wait_ms`` -> ``--max-wait-ms``),
    with the field's help, default and choices; :func:`options_given` reads them back."""
    group = parser.add_argument_group(title)
    for key, tp, help_text, default, choices in describe_fields(cls):
        shown = [c for c in choices if c is not None] if choices else None
        group.add_argument("--" + key.replace("_", "-"), dest="opt:" + key,
                           default=argparse.SUPPRESS, choices=shown,
                           metavar=None if shown else _metavar(tp),
                           help=f"{help_text} (default: {_show(default)})")


def options_given(namespace: argparse.Namespace, cls: type) -> Any:
    """The config ``cls`` of the flags typed over its defaults (see :func:`add_option_flags`);
    a value of the wrong type is a ConfigError naming the option."""
    from crossrank.options import from_dict

    types = {key: tp for key, tp, *_ in describe_fields(cls)}
    given = {dest[4:]: _scalar(value, types[dest[4:]])
             for dest, value in vars(namespace).items() if dest.startswith("opt:")}
    return from_dict(cls, given)


def _scalar(text: str, tp: Any) -> Any:
    """A flag's text as a value of a scalar option (``none`` where None is allowed); the config
    checks the type. Light on purpose: ``crossrank serve`` runs where torch is not installed."""
    import json

    args = typing.get_args(tp)
    if tp is str or str in args:
        return text
    if type(None) in args and text.strip().lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
