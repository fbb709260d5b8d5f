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
from crossrank.data.config import SchemaConfig
from crossrank.data.files import Format
from crossrank.data.schema import Task
from crossrank.errors import ConfigError

_ROLES = ("label", "dense", "categorical", "id_column", "task")


def _conflicts(section: SchemaConfig, found: TableSchema, source: str) -> None:
    """Raise when the section sets a role to another value than ``found`` (from ``source``)."""
    for role in _ROLES:
        given = getattr(section, role)
        if given in (None, ()):
            continue
        if given != getattr(found, role):
            raise ConfigError(f"schema.{role} is {given!r} but {source} says "
                              f"{getattr(found, role)!r}: give it in one place")


def resolve_table_schema(section: SchemaConfig, path: str,
                         fmt: Format) -> tuple[TableSchema, InferredSchema | None]:
    """The table schema of ``path`` (see the module doc), and the inference report when the
    columns were inferred from a sample of the file (CSV, Parquet)."""
    task = cast(Task, section.task or "binary")
    weight = section.weight_column
    if fmt == "criteo":
        if weight is not None:
            raise ConfigError("Criteo files have a fixed layout (label, I1..I13, C1..C26) "
                              f"without a weight column: got schema.weight_column={weight!r}")
        if section.file is not None:
            raise ConfigError("Criteo files have a fixed layout (label, I1..I13, C1..C26): "
                              "give no schema file")
        layout = infer_schema(path, "criteo", task=task).schema
        _conflicts(dataclasses.replace(section, task=None), layout, "the Criteo layout")
        return layout, None
    if section.file is not None:
        found = load_schema(section.file)
        _conflicts(section, found, f"the schema file {section.file!r}")
        if weight is not None and found.weight not in (None, weight):
            raise ConfigError(f"schema.weight_column is {weight!r} but the schema file "
                              f"{section.file!r} says {found.weight!r}: give it in one place")
        return dataclasses.replace(found, weight=weight or found.weight), None
    # named columns take the role they are given; every other column is inferred
    if weight is not None:
        roles: dict[str | None, str] = {
            section.label or "label": "label", section.id_column: "id column",
            **{n: "dense" for n in section.dense},
            **{n: "categorical" for n in section.categorical}}
        if weight in roles:
            raise ConfigError(f"schema.weight_column {weight!r} is also a {roles[weight]} "
                              "column: a weight is read with the row, never a feature or label")
    exclude = section.exclude
    if weight is not None and weight not in exclude:
        exclude += (weight,)
    inferred = infer_schema(path, fmt, label=section.label or "label",
                            id_column=section.id_column, dense=section.dense,
                            categorical=section.categorical, exclude=exclude, task=task)
    if weight is not None:  # read with the row, never a feature
        try:
            schema = dataclasses.replace(inferred.schema, weight=weight)
        except ValueError as err:
            raise ConfigError(f"schema.weight_column: {err}") from None
        inferred = dataclasses.replace(inferred, schema=schema)
    return inferred.schema, inferred


def resolved_section(section: SchemaConfig, schema: TableSchema) -> SchemaConfig:
    """The schema section with every role named, as the run used it."""
    return SchemaConfig(label=schema.label, dense=schema.dense, categorical=schema.categorical,
                        id_column=schema.id_column, exclude=section.exclude, task=schema.task,
                        weight_column=schema.weight)
