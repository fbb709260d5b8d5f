"""What schema inference found, column by column: printed when training starts, saved with the
model.

:class:`InferredSchema` holds the :class:`~crossrank.data.schema.TableSchema` and one
:class:`ColumnReport` per column of the file, in file order, label, id and left-out columns
included, so the printed table accounts for every column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from crossrank.data.schema import TableSchema

ColumnKind = Literal["label", "id", "dense", "categorical", "multi-valued", "excluded",
                     "unsupported"]
KINDS: tuple[str, ...] = ("label", "id", "dense", "categorical", "multi-valued", "excluded",
                          "unsupported")


def _check_keys(d: Any, known: set[str], what: str) -> None:
    if not isinstance(d, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known keys are {sorted(known)}")
    missing = sorted(known - set(d))
    if missing:
        raise ValueError(f"{what} is missing keys {missing}")


@dataclass(frozen=True)
class ColumnReport:
    """One column of the sampled file and what inference made of it.

    Args:
        name: the column's name.
        kind: ``"dense"``, ``"categorical"``, ``"label"``, ``"id"``, ``"excluded"`` (asked
            for, or not named when only named columns are used) or ``"unsupported"``.
        arrow_type: the type of the sampled values (text: what they parse as).
        distinct: distinct present values in the sample.
        missing: share of sampled rows without a value, in [0, 1].
        reason: why the column got its kind, in words.
    """

    name: str
    kind: ColumnKind
    arrow_type: str
    distinct: int
    missing: float
    reason: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not 0.0 <= self.missing <= 1.0:
            raise ValueError(f"missing must be a share in [0, 1], got {self.missing!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnReport:
        _check_keys(d, {f.name for f in fields(cls)}, "column report")
        return cls(**d)


@dataclass(frozen=True)
class InferredSchema:
    """The inferred schema and the report behind it.

    Args:
        schema: the schema to read the data with.
        columns: one report per column of the sampled file, in file order.
        file: the file sampled (the first shard).
        sample_rows: rows read to infer the kinds.

    Example:
        >>> s = TableSchema(label="y", dense=("price",), categorical=("city",))
        >>> r = InferredSchema(s, (
        ...     ColumnReport("y", "label", "int64", 2, 0.0, "label"),
        ...     ColumnReport("price", "dense", "double", 950, 0.0, "floating-point numbers"),
        ...     ColumnReport("city", "categorical", "string", 12, 0.25, "text, e.g. 'paris'"),
        ... ), file="a.csv", sample_rows=1000)
        >>> print(r.format_table())
        a.csv, first 1,000 rows: label 'y', 1 dense, 1 categorical
        column  kind         type    distinct  missing  why
        y       label        int64          2     0.0%  label
        price   dense        double       950     0.0%  floating-point numbers
        city    categorical  string        12    25.0%  text, e.g. 'paris'
        >>> InferredSchema.from_dict(r.to_dict()) == r
        True
    """

    schema: TableSchema
    columns: tuple[ColumnReport, ...]
    file: str
    sample_rows: int

    def column(self, name: str) -> ColumnReport:
        """The report on column ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"no column {name!r} in the report; it has {[c.name for c in self.columns]}")

    def summary(self) -> str:
        """One line: the file, the sample and how many columns of each kind."""
        s = self.schema
        label = f"label {s.label!r}" if s.label is not None else "no label"
        parts = [label, f"{len(s.dense)} dense", f"{len(s.categorical)} categorical"]
        if s.id_column is not None:
            parts.insert(1, f"id {s.id_column!r}")
        if s.multi_valued:
            parts.append(f"{len(s.multi_valued)} multi-valued")
        left = sum(c.kind in ("excluded", "unsupported") for c in self.columns)
        if left:
            parts.append(f"{left} left out")
        return f"{self.file}, first {self.sample_rows:,} rows: " + ", ".join(parts)

    def format_table(self) -> str:
        """The summary line, then one line per column: name, kind, type, distinct values in
        the sample, missing share and why."""
        head = ("column", "kind", "type", "distinct", "missing", "why")
        rows = [(c.name, c.kind, c.arrow_type, f"{c.distinct:,}", f"{c.missing:.1%}", c.reason)
                for c in self.columns]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
        right = (False, False, False, True, True)

        def line(r: tuple[str, ...]) -> str:
            cells = [r[i].rjust(widths[i]) if right[i] else r[i].ljust(widths[i]) for i in range(5)]
            return "  ".join([*cells, r[5]]).rstrip()

        return "\n".join([self.summary(), line(head), *(line(r) for r in rows)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (saved with the model); :meth:`from_dict` inverts it."""
        return {
            "file": self.file,
            "sample_rows": self.sample_rows,
            "schema": self.schema.to_dict(),
            "columns": [asdict(c) for c in self.columns],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InferredSchema:
        """Build from :meth:`to_dict` output; unknown or missing keys raise ``ValueError``."""
        _check_keys(d, {"file", "sample_rows", "schema", "columns"}, "inferred schema")
        return cls(
            schema=TableSchema.from_dict(d["schema"]),
            columns=tuple(ColumnReport.from_dict(c) for c in d["columns"]),
            file=d["file"],
            sample_rows=d["sample_rows"],
        )
