"""What each column of a schema is read as (its role) and which Arrow types can be read in
each role: checked before any value is, so a column of the wrong type is one error naming it.
"""

from __future__ import annotations

import pyarrow as pa

from crossrank.data.schema import TableSchema


def is_text(t: pa.DataType) -> bool:
    """Arrow string or binary, large or not."""
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t))


def column_type_problem(role: str, t: pa.DataType) -> str | None:
    """Why a column of Arrow type ``t`` cannot be read in ``role`` (``"label"``, ``"dense"``,
    ``"categorical"`` or ``"id"``), or None when it can.

    Example:
        >>> column_type_problem("dense", pa.list_(pa.float64()))
        'has type list<item: double>; a dense column must hold numbers or text'
        >>> column_type_problem("categorical", pa.dictionary(pa.int8(), pa.string())) is None
        True
    """
    if pa.types.is_dictionary(t):
        t = t.value_type
    if role == "multi_valued" and (pa.types.is_list(t) or pa.types.is_large_list(t)):
        item = t.value_type
        if is_text(item) or pa.types.is_integer(item) or pa.types.is_null(item):
            return None
        return f"has type {t}; a multi-valued list must hold integers or text"
    if is_text(t) or pa.types.is_integer(t) or pa.types.is_null(t):
        return None
    if role in ("label", "dense", "weight"):
        if pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t):
            return None
        return f"has type {t}; a {role} column must hold numbers or text"
    if role == "categorical" and pa.types.is_floating(t):
        return f"holds floats ({t}); store ids as integers or text so they stay exact"
    if role == "categorical" and not pa.types.is_nested(t) and not pa.types.is_union(t):
        return None  # booleans, dates, decimals: read as their text
    if role == "group" and pa.types.is_floating(t):
        return None
    article = "an" if role == "id" else "a"
    return f"has type {t}; {article} {role} column must hold integers or text"


def column_roles(schema: TableSchema) -> dict[str, str]:
    """Each column the schema reads and its role: label, dense, categorical, multi_valued, id,
    weight or group (a group column that is also a feature or the id keeps that role)."""
    roles = {n: "dense" for n in schema.dense} | {n: "categorical" for n in schema.categorical}
    roles |= {n: "multi_valued" for n in schema.multi_valued_names}
    roles |= {n: "label" for n in schema.labels}
    if schema.id_column is not None:
        roles[schema.id_column] = "id"
    if schema.weight is not None:
        roles[schema.weight] = "weight"
    if schema.group is not None and schema.group not in roles:
        roles[schema.group] = "group"
    return roles
