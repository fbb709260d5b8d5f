"""From the schema section of a run's configuration to the table schema the files are read with.

One place decides each column's role, in this order: Criteo's fixed layout for Criteo files; a
schema file; the columns the section names, with the rest inferred from the file (CSV,
Parquet). A role given in two places with two values is an error naming both, never silently
resolved. The resolved section, with every column named, is what ``model.json`` records, so a
run built from it reads the same columns again.
"""

from __future__ import annotations

import dataclasses
from typing import cast

from crossrank.data import InferredSchema, TableSchema, infer_schema, load_schema
from crossrank.data.column_check import describe_missing, show_columns
from crossrank.data.config import SchemaConfig
from crossrank.data.files import Format, list_shards
from crossrank.data.sample import file_columns
from crossrank.data.schema import Task, criteo_schema
from crossrank.errors import BadInputError, ConfigError

_ROLES = ("label", "dense", "categorical", "id_column", "task")


def _conflicts(section: SchemaConfig, found: TableSchema, source: str) -> None:
    """Raise when the section sets a role to another value than ``found`` (from ``source``)."""
    for role in _ROLES:
        given = getattr(section, role)
        if given in (None, ()):
            continue
        has = getattr(found, role)
        if role == "label":
            given, has = section.label_names(), found.labels
        elif role == "task":
            given, has = section.task_names(len(found.labels) or 1), found.tasks
        if given != has:
            raise ConfigError(f"schema.{role} is {getattr(section, role)!r} but {source} says "
                              f"{_joined(has)!r}: give it in one place")


def _joined(value: object) -> object:
    return ",".join(value) if isinstance(value, tuple) and value and \
        isinstance(value[0], str) else value


def resolve_table_schema(section: SchemaConfig, path: str,
                         fmt: Format) -> tuple[TableSchema, InferredSchema | None]:
    """The table schema of ``path`` (see the module doc), and the inference report when the
    columns were inferred from a sample of the file (CSV, Parquet)."""
    labels = section.label_names()
    tasks = cast(tuple[Task, ...], section.task_names(len(labels) or 1))
    task = tasks[0]
    lists = section.multi_valued_specs()
    weight = section.weight_column
    if fmt == "criteo":
        if len(labels) > 1:
            raise ConfigError("Criteo files have a fixed layout (label, I1..I13, C1..C26) "
                              f"with one label: got schema.label={section.label!r}")
        if lists:
            raise ConfigError("Criteo files have a fixed layout (label, I1..I13, C1..C26): "
                              "give no multi-valued field")
        if weight is not None:
            raise ConfigError("Criteo files have a fixed layout (label, I1..I13, C1..C26) "
                              f"without a weight column: got schema.weight_column={weight!r}")
        if section.file is not None:
            raise ConfigError("Criteo files have a fixed layout (label, I1..I13, C1..C26): "
                              "give no schema file")
        # the layout is fixed: the first line's field count tells whether a label leads it
        # (sampling and describing every column, as inference does, would cost ~0.7 s)
        with_label = file_columns(list_shards(path)[0], "criteo")[0] == "label"
        layout = dataclasses.replace(criteo_schema(with_label=with_label), task=task)
        _conflicts(dataclasses.replace(section, task=None), layout, "the Criteo layout")
        return layout, None
    if section.file is not None:
        found = load_schema(section.file)
        _conflicts(section, found, f"the schema file {section.file!r}")
        if lists and found.multi_valued and lists != found.multi_valued:
            raise ConfigError(f"schema.multi_valued is {section.multi_valued!r} but the schema "
                              f"file {section.file!r} declares others: give them in one place")
        if weight is not None and found.weight not in (None, weight):
            raise ConfigError(f"schema.weight_column is {weight!r} but the schema file "
                              f"{section.file!r} says {found.weight!r}: give it in one place")
        return dataclasses.replace(found, multi_valued=lists or found.multi_valued,
                                   weight=weight or found.weight), None
    # named columns take the role they are given; every other column is inferred, but never
    # as multi-valued (declared, and left out of the inference) or as the weight (read with
    # the row, never a feature)
    if weight is not None:
        roles: dict[str | None, str] = {
            **{n: "label" for n in labels or ("label",)}, section.id_column: "id column",
            **{n: "dense" for n in section.dense},
            **{n: "categorical" for n in section.categorical},
            **{m.name: "multi-valued" for m in lists}}
        if weight in roles:
            raise ConfigError(f"schema.weight_column {weight!r} is also a {roles[weight]} "
                              "column: a weight is read with the row, never a feature or label")
    names = tuple(m.name for m in lists)
    _check_declared(path, fmt, [("multi-valued", n) for n in names]
                    + [("label", n) for n in labels[1:]])
    exclude = section.exclude + names + labels[1:]
    if weight is not None and weight not in exclude:
        exclude += (weight,)
    inferred = infer_schema(path, fmt, label=labels[0] if labels else "label",
                            id_column=section.id_column, dense=section.dense,
                            categorical=section.categorical, exclude=exclude, task=task)
    if lists or len(labels) > 1:
        reports = tuple(dataclasses.replace(r, kind="multi-valued", reason="declared")
                        if r.name in names else
                        dataclasses.replace(r, kind="label", reason="label (multi-task)")
                        if r.name in labels[1:] else r for r in inferred.columns)
        inferred = dataclasses.replace(
            inferred, schema=dataclasses.replace(inferred.schema, multi_valued=lists),
            columns=reports)  # multi_valued=() when there are none, as inferred
    if weight is not None or len(labels) > 1:
        try:
            schema = dataclasses.replace(inferred.schema, weight=weight, extra_labels=labels[1:],
                                         extra_tasks=tasks[1:])
        except ValueError as err:
            raise ConfigError(f"schema: {err}") from None
        inferred = dataclasses.replace(inferred, schema=schema)
    return inferred.schema, inferred


def _check_declared(path: str, fmt: Format, roles: list[tuple[str, str]]) -> None:
    """A declared multi-valued (or later label) column the first file lacks is an error
    naming it; ``roles``: (role, column name) pairs."""
    if not roles:
        return
    file = list_shards(path)[0]
    columns = file_columns(file, fmt)
    absent = [(role, n) for role, n in roles if n not in columns]
    if absent:
        raise BadInputError(f"not in the file: {describe_missing(absent, columns)}; its "
                            f"columns are {show_columns(columns)}", file=str(file),
                            reason="bad_file")


def resolved_section(section: SchemaConfig, schema: TableSchema) -> SchemaConfig:
    """The schema section with every role named, as the run used it."""
    return SchemaConfig(label=",".join(schema.labels) or None, dense=schema.dense,
                        categorical=schema.categorical, id_column=schema.id_column,
                        exclude=section.exclude, task=",".join(schema.tasks),
                        multi_valued=tuple(m.to_text() for m in schema.multi_valued),
                        weight_column=schema.weight)
