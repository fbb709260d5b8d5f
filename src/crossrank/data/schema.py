"""Table schemas: which columns are the label, the dense features, the categorical fields, the id.

A :class:`TableSchema` names columns; it never holds data. Its column order
``(id_column?, label?, *dense, *categorical, weight?, group?)`` is the order every reader
yields (the group column only when it is not already one of the others). The JSON form
(:meth:`TableSchema.to_dict`, :func:`load_schema`, :func:`save_schema`) is what the command
line takes and what is saved beside a model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from crossrank.data.multi_valued import MultiValuedSpec

Task = Literal["binary", "regression"]

TASKS: tuple[str, ...] = ("binary", "regression")

CRITEO_NUM_DENSE = 13
CRITEO_NUM_CATEGORICAL = 26


def _names(value: Any, argument: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{argument} must be a sequence of column names, got {value!r}")
    for name in value:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{argument} must contain non-empty strings, got {name!r}")
    return tuple(value)


def _optional_name(value: Any, argument: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(f"{argument} must be a non-empty string or None, got {value!r}")
    return value


@dataclass(frozen=True)
class TableSchema:
    """Names of the label, dense, categorical and id columns of a click log.

    Args:
        label: label column, or ``None`` for unlabelled data (prediction).
        dense: numeric feature columns; a missing value is allowed.
        categorical: categorical feature columns (F fields); a missing value is allowed.
        id_column: optional row id passed through unchanged (prediction output).
        task: ``"binary"`` (labels in {0, 1}) or ``"regression"`` (any finite label).
        multi_valued: multi-valued fields (M of them; see :mod:`crossrank.data.multi_valued`),
            read after the categorical columns.
        weight: optional per-row weight column (finite, >= 0) of every loss and metric.
        group: optional column grouping rows for the group AUC (a user, a query); it may be
            a feature or the id column too, never the label or the weight.
        extra_labels: the labels of a multi-task schema after the first (``label``), read
            after it; a missing value there is allowed (that task's loss is masked for the row).
        extra_tasks: their tasks, one per extra label.

    Example:
        >>> s = TableSchema(label="y", dense=("age",), categorical=("city", "ad"))
        >>> s.column_names
        ('y', 'age', 'city', 'ad')
        >>> TableSchema.from_dict(s.to_dict()) == s
        True
    """

    label: str | None
    dense: tuple[str, ...]
    categorical: tuple[str, ...]
    id_column: str | None = None
    task: Task = "binary"
    multi_valued: tuple[MultiValuedSpec, ...] = ()
    weight: str | None = None
    group: str | None = None
    extra_labels: tuple[str, ...] = ()
    extra_tasks: tuple[Task, ...] = ()

    def __post_init__(self) -> None:
        specs = tuple(self.multi_valued)
        if not all(isinstance(m, MultiValuedSpec) for m in specs):
            raise TypeError(f"multi_valued must hold MultiValuedSpec, got {specs!r}")
        object.__setattr__(self, "multi_valued", specs)
        object.__setattr__(self, "label", _optional_name(self.label, "label"))
        object.__setattr__(self, "dense", _names(self.dense, "dense"))
        object.__setattr__(self, "categorical", _names(self.categorical, "categorical"))
        object.__setattr__(self, "id_column", _optional_name(self.id_column, "id_column"))
        object.__setattr__(self, "weight", _optional_name(self.weight, "weight"))
        object.__setattr__(self, "group", _optional_name(self.group, "group"))
        object.__setattr__(self, "extra_labels", _names(self.extra_labels, "extra_labels"))
        object.__setattr__(self, "extra_tasks", tuple(self.extra_tasks))
        for task in (self.task, *self.extra_tasks):
            if task not in TASKS:
                raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if len(self.extra_tasks) != len(self.extra_labels):
            raise ValueError(f"{len(self.extra_labels)} extra labels {self.extra_labels} need "
                             f"as many tasks, got {self.extra_tasks}")
        if self.extra_labels and self.label is None:
            raise ValueError("a multi-task schema needs its first label, got label=None")
        if not self.dense and not self.categorical and not self.multi_valued:
            raise ValueError("a schema needs at least one dense or categorical column, got none")
        seen: dict[str, str] = {}
        roles = [("id_column", self.id_column), ("label", self.label)]
        roles += [("label", n) for n in self.extra_labels]
        roles += [("dense", n) for n in self.dense] + [("categorical", n) for n in self.categorical]
        roles += [("multi_valued", n) for n in self.multi_valued_names]
        roles.append(("weight", self.weight))
        for role, name in roles:
            if name is None:
                continue
            if name in seen:
                raise ValueError(
                    f"column {name!r} appears twice in the schema (as {seen[name]} and as {role})"
                )
            seen[name] = role
        if self.group is not None and seen.get(self.group) in ("label", "weight"):
            raise ValueError(f"the group column {self.group!r} is the {seen[self.group]} column")

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column in reader order: id, labels, dense, categorical, weight, group (absent
        ones left out, the group when it is already another role's)."""
        head = tuple(n for n in (self.id_column, self.label) if n is not None)
        names = head + self.extra_labels + self.dense + self.categorical + self.multi_valued_names
        names += (self.weight,) if self.weight is not None else ()
        if self.group is not None and self.group not in names:
            names += (self.group,)
        return names

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label column in task order (one for a single-task schema, none unlabelled).

        Example:
            >>> TableSchema(label="click", dense=("x",), categorical=(),
            ...             extra_labels=("buy",), extra_tasks=("binary",)).labels
            ('click', 'buy')
        """
        return ((self.label,) if self.label is not None else ()) + self.extra_labels

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The task of each label in :attr:`labels` (one task when unlabelled)."""
        return (self.task,) + self.extra_tasks

    @property
    def multi_valued_names(self) -> tuple[str, ...]:
        """The multi-valued fields' columns."""
        return tuple(m.name for m in self.multi_valued)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Dense, categorical, then multi-valued feature columns."""
        return self.dense + self.categorical + self.multi_valued_names

    def without_label(self) -> TableSchema:
        """The same schema for unlabelled data (prediction input): no label, no weight."""
        return replace(self, label=None, weight=None, extra_labels=(), extra_tasks=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; :meth:`from_dict` inverts it (``multi_valued`` only when
        there are some, so schemas without them read as before; a multi-task schema's
        ``label`` and ``task`` are lists, one entry per task)."""
        multi = bool(self.extra_labels)
        d: dict[str, Any] = {
            "label": list(self.labels) if multi else self.label,
            "dense": list(self.dense),
            "categorical": list(self.categorical),
            "id_column": self.id_column,
            "task": list(self.tasks) if multi else self.task,
            **({"weight": self.weight} if self.weight is not None else {}),
            **({"group": self.group} if self.group is not None else {}),
        }
        if self.multi_valued:
            d["multi_valued"] = [m.to_dict() for m in self.multi_valued]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TableSchema:
        """Build from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        if not isinstance(d, Mapping):
            raise TypeError(f"d must be a mapping, got {type(d).__name__}")
        known = {"label", "dense", "categorical", "id_column", "task", "multi_valued", "weight",
                 "group"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown schema keys {unknown}; known keys are {sorted(known)}")
        missing = sorted({"label", "dense", "categorical"} - set(d))
        if missing:
            raise ValueError(f"schema is missing required keys {missing}")
        label, task = d["label"], d.get("task", "binary")
        extra_labels: tuple[str, ...] = ()
        extra_tasks: tuple[Any, ...] = ()
        if isinstance(label, list | tuple):
            labels = _names(label, "label")
            tasks = tuple(task) if isinstance(task, list | tuple) else (task,) * len(labels)
            if len(tasks) != len(labels) or not labels:
                raise ValueError(f"schema labels {list(labels)} need one task each, got {task!r}")
            (label, *rest), (task, *more) = labels, tasks
            extra_labels, extra_tasks = tuple(rest), tuple(more)
        return cls(
            label=label,
            dense=_names(d["dense"], "dense"),
            categorical=_names(d["categorical"], "categorical"),
            id_column=d.get("id_column"),
            task=task,
            extra_labels=extra_labels,
            extra_tasks=extra_tasks,
            multi_valued=tuple(MultiValuedSpec.from_dict(m) for m in d.get("multi_valued", ())),
            weight=d.get("weight"),
            group=d.get("group"),
        )


def criteo_schema(*, with_label: bool = True) -> TableSchema:
    """The Criteo Display Advertising layout: ``label, I1..I13, C1..C26``.

    Args:
        with_label: ``False`` for the unlabelled test file (39 columns).

    Example:
        >>> s = criteo_schema()
        >>> s.label, s.dense[0], s.dense[-1], len(s.categorical)
        ('label', 'I1', 'I13', 26)
    """
    if not isinstance(with_label, bool):
        raise TypeError(f"with_label must be a bool, got {with_label!r}")
    return TableSchema(
        label="label" if with_label else None,
        dense=tuple(f"I{i}" for i in range(1, CRITEO_NUM_DENSE + 1)),
        categorical=tuple(f"C{i}" for i in range(1, CRITEO_NUM_CATEGORICAL + 1)),
    )


def load_schema(path: str | Path) -> TableSchema:
    """Read a schema from a JSON file holding :meth:`TableSchema.to_dict` output."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"schema file {str(path)!r} is not valid JSON: {e}") from e
    return TableSchema.from_dict(d)


def save_schema(schema: TableSchema, path: str | Path) -> None:
    """Write ``schema`` as JSON (the inverse of :func:`load_schema`)."""
    if not isinstance(schema, TableSchema):
        raise TypeError(f"schema must be a TableSchema, got {type(schema).__name__}")
    Path(path).write_text(json.dumps(schema.to_dict(), indent=2) + "\n", encoding="utf-8")
