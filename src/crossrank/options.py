"""Typed, frozen option dataclasses: one source for every option's default, help and choices.

A config class is a frozen dataclass whose fields are declared with :func:`option`; the command
line, the config file and ``model.json`` are all generated from those fields, never written
beside them. :func:`from_dict` builds a config from plain data (a TOML table, JSON, ``--set``
overrides) and checks every value against the field's type and choices; an unknown key is an
error naming the nearest valid one. :func:`to_dict` is its inverse.

A leaf module: every room may import it.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Fit:
    ...     lr: float = option(1e-3, help="learning rate")
    ...     optimizer: str = option("adam", help="optimizer", choices=("adam", "sgd"))
    >>> from_dict(Fit, {"lr": 3})
    Fit(lr=3.0, optimizer='adam')
    >>> from_dict(Fit, {"lrr": 0.1})
    Traceback (most recent call last):
    ...
    crossrank.errors.ConfigError: unknown option 'lrr'; did you mean 'lr'? (valid: lr, optimizer)
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from crossrank.errors import ConfigError

T = TypeVar("T")

__all__ = ["describe_fields", "from_dict", "nearest", "option", "to_dict"]


def option(default: Any = dataclasses.MISSING, *, help: str,
           choices: tuple[Any, ...] | None = None,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field carrying its help text and valid choices (read by the CLI and docs).

    Args:
        default: the default value (immutable: a tuple, not a list).
        help: one line for ``--help``.
        choices: the valid values, when the option is one of a few.
        default_factory: for a nested config's default (``default_factory=CrossConfig``).
    """
    metadata = {"help": help, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def nearest(name: str, valid: list[str] | tuple[str, ...]) -> str | None:
    """The valid name closest to ``name`` (a misspelling, or the last part of a dotted name).

    Example:
        >>> nearest("rnk", ["rank", "norm"]), nearest("rank", ["cross.rank", "dropout"])
        ('rank', 'cross.rank')
    """
    for candidate in valid:  # "rank" for "cross.rank": the option moved into a section
        if candidate.rsplit(".", 1)[-1] == name:
            return candidate
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown(key: str, valid: list[str], where: str) -> ConfigError:
    near = nearest(key, valid)
    hint = f"; did you mean '{where}{near}'?" if near else ""
    return ConfigError(f"unknown option '{where}{key}'{hint} (valid: {', '.join(valid)})")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked (and, where lossless, converted) against annotation ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arm in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arm, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"option '{key}' must be {' or '.join(map(_type_name, args))}, "
                          f"got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"option '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(f"option '{key}' must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"option '{key}' must be a table of key = value, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where=f"{key}.")
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"option '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"option '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"option '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"option '{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"option '{key}': unsupported annotation {tp!r}")  # a bug, not user input


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "") -> T:
    """Build config ``cls`` from plain data: unknown keys, wrong types and values outside a
    field's choices raise :class:`~crossrank.errors.ConfigError` naming the key (prefixed with
    ``where``, e.g. ``"training."``); lists become tuples; nested configs are built from tables.
    Values the class itself rejects (``__post_init__``'s ``ValueError``) become ConfigErrors too.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"'{where.rstrip('.') or cls.__name__}' must be a table of options, "
                          f"got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown(str(key), list(fields), where)
        value = _convert(value, hints[key], f"{where}{key}")
        choices = fields[key].metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"option '{where}{key}' must be one of {list(choices)}, "
                              f"got {value!r}")
        values[key] = value
    try:
        return cls(**values)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"{where.rstrip('.') + ': ' if where else ''}{err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """Plain data of a config (nested configs as dicts, tuples as lists); ``from_dict`` inverts it.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Net:
        ...     layers: tuple[int, ...] = option((8, 4), help="sizes")
        >>> to_dict(Net())
        {'layers': [8, 4]}
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        out[f.name] = _plain(getattr(config, f.name))
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def describe_fields(cls: type, *, prefix: str = "") -> list[tuple[str, Any, str, Any, Any]]:
    """``(dotted name, type, help, default, choices)`` of every leaf option of ``cls``, nested
    configs expanded (``cross.rank``): what ``--help`` and the documentation list."""
    hints = _hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        nested = [a for a in (typing.get_args(tp) or (tp,))
                  if dataclasses.is_dataclass(a) and isinstance(a, type)]
        if nested and (default is None or dataclasses.is_dataclass(default)):
            rows += describe_fields(nested[0], prefix=f"{prefix}{f.name}.")
            continue
        rows.append((f"{prefix}{f.name}", tp, f.metadata.get("help", ""), default,
                     f.metadata.get("choices")))
    return rows
