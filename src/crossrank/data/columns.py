"""Reading one column of an Arrow table the way the encoder and its fit statistics both need:
whole (one array), dense values as float64 with NaN for missing, categorical values as text.

Example:
    >>> t = pa.table({"n": pa.array([1, None], pa.int64()), "c": pa.array([7, None])})
    >>> as_float64(column(t, "n"), "n").tolist(), as_text(column(t, "c")).to_pylist()
    ([1.0, nan], ['7', None])
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def column(table: pa.Table, name: str) -> pa.Array:
    """Column ``name`` of ``table`` as one array; a missing column raises naming both."""
    index = table.schema.get_field_index(name)  # not `in table.column_names`: that builds
    if index < 0:  # a list of every name per call, 14 us on a 40-column row
        if name in table.column_names:  # get_field_index is -1 for a repeated name too
            raise ValueError(f"column {name!r} appears more than once in the table")
        raise ValueError(f"table has no column {name!r}; it has {table.column_names}")
    col = table.column(index)
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def as_float64(arr: pa.Array, name: str) -> np.ndarray:
    """Values as float64 with NaN where missing; an infinite value raises naming its row.

    Shape:
        arr (n,) -> (n,) float64.
    """
    t = arr.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
            or pa.types.is_boolean(t) or pa.types.is_null(t)):
        raise TypeError(f"dense column {name!r} must hold numbers, got type {t}")
    x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    if np.isinf(x).any():
        row = int(np.flatnonzero(np.isinf(x))[0])
        raise ValueError(f"dense column {name!r} holds an infinite value at row {row}")
    return x


def as_text(arr: pa.Array) -> pa.Array:
    """Categorical values as Arrow text (integers as decimal text), nulls kept."""
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return arr
    if pa.types.is_floating(t):
        raise TypeError(f"categorical values must be integers or text, got type {t}")
    return pc.cast(arr, pa.string())


def row_weights(table: pa.Table, name: str | None) -> np.ndarray | None:
    """The weight column ``name`` of ``table`` as float32, or None (no weight column, or a
    table without it: unlabelled data). A missing or negative weight raises naming it.

    Example:
        >>> row_weights(pa.table({"w": [2, 0]}), "w").tolist(), row_weights(pa.table({}), "w")
        ([2.0, 0.0], None)
    """
    if name is None or name not in table.column_names:
        return None
    weight = as_float64(column(table, name), name)
    if not (weight >= 0).all():  # NaN (missing) fails too
        raise ValueError(f"weight column {name!r} has missing or negative values")
    return weight.astype(np.float32)


def row_labels(table: pa.Table, names: tuple[str, ...]) -> np.ndarray | None:
    """The label column ``names[0]`` as float32 (B,), or several labels (a multi-task schema)
    as (B, T) with NaN where a later task's label is missing; None without labels or for a
    table without the first (unlabelled data). A missing first label raises naming it.

    Example:
        >>> t = pa.table({"y": [1.0, 0.0], "z": [None, 1.0]})
        >>> row_labels(t, ("y",)).tolist(), row_labels(t, ("y", "z")).tolist()
        ([1.0, 0.0], [[1.0, nan], [0.0, 1.0]])
    """
    if not names or names[0] not in table.column_names:
        return None
    columns = []
    for i, name in enumerate(names):
        values = as_float64(column(table, name), name)
        if i == 0 and np.isnan(values).any():
            raise ValueError(f"label column {name!r} has missing values")
        columns.append(values.astype(np.float32))
    if len(columns) == 1:
        return columns[0]
    return np.stack(columns, axis=1)  # (B, T)
