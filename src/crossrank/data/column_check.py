"""Does a file have the columns a schema reads? Checked before predicting or evaluating, so a
missing column is one line naming the file and every missing column, not a failure mid-stream.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from crossrank.data.files import FORMATS, Format, list_shards
from crossrank.data.sample import file_columns, first_line, repeated
from crossrank.data.schema import TableSchema
from crossrank.data.validate import show_names as show_columns
from crossrank.errors import BadInputError


def nearest(name: str, names: Sequence[str]) -> str | None:
    """The column most like ``name``: the same but for case, else difflib's closest, else None.

    Example:
        >>> nearest("clicked", ["user", "click", "item"]), nearest("City", ["city"])
        ('click', 'city')
    """
    same = [n for n in names if n.lower() == name.lower()]
    if same:
        return same[0]
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return close[0] if close else None


def describe_missing(missing: Sequence[tuple[str, str]], names: Sequence[str]) -> str:
    """``label 'clicked' (did you mean 'click'?), dense 'prise' (did you mean 'price'?)``.

    Args:
        missing: (what the column is, its name) pairs.
        names: the columns the file has.
    """
    parts = []
    for what, name in missing:
        close = nearest(name, names)
        parts.append(f"{what} {name!r}" + (f" (did you mean {close!r}?)" if close else ""))
    return ", ".join(parts)


def _check_criteo(file: Path, schema: TableSchema, need_label: bool) -> bool:
    if schema.id_column is not None:
        raise ValueError(
            f"the criteo format has no id column, got schema.id_column={schema.id_column!r}"
        )
    line = first_line(file)
    found = line.count(b"\t") + 1 if line else 0
    features = len(schema.dense) + len(schema.categorical)
    layout = f"{len(schema.dense)} dense and {len(schema.categorical)} categorical fields"
    if schema.label is not None and found == features + 1:
        return True
    if found == features and not (need_label and schema.label is not None):
        return False
    if found == features:
        raise BadInputError(
            f"{found} tab-separated fields: {layout} but no label; the label is required here",
            file=str(file), line=1, reason="bad_file",
        )
    expected = f"{features + 1} (with the label) or {features}" if schema.label else str(features)
    raise BadInputError(
        f"{found} tab-separated fields; the schema ({layout}) expects {expected}",
        file=str(file), line=1, reason="wrong_field_count",
    )


def check_columns(
    path: str | Path, fmt: Format, schema: TableSchema, *, need_label: bool = True
) -> bool:
    """Check that every file of ``path`` has the columns ``schema`` reads.

    Every shard is checked (headers, Parquet schemas, a Criteo file's first line), not only
    the first. Required: the id column, every dense and categorical column, and the label
    when ``need_label`` (evaluation); prediction passes ``need_label=False`` and reads the
    label only if the returned flag says every file has it.

    Args:
        path: a file, a directory of shards or a glob.
        fmt: ``"criteo"``, ``"csv"`` or ``"parquet"``.
        schema: the schema the data will be read with (a trained model's).
        need_label: whether a file without ``schema.label`` is an error.

    Returns:
        Whether every file has the label column (``False`` when ``schema.label`` is None).

    Raises:
        BadInputError: one line naming the first file that lacks columns and every column
            it lacks (with the nearest name it has), reason ``"bad_file"``.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "new.csv")
        >>> _ = open(p, "w").write("user,City\\n3,paris\\n")
        >>> s = TableSchema(label="click", dense=(), categorical=("user", "city"))
        >>> try:
        ...     check_columns(p, "csv", s, need_label=False)
        ... except BadInputError as e:
        ...     print(e.detail)
        lacks categorical 'city' (did you mean 'City'?); it has columns ['user', 'City']
        >>> check_columns(p, "csv", TableSchema(label="click", dense=(), categorical=("user",)),
        ...               need_label=False)
        False
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(schema, TableSchema):
        raise TypeError(f"schema must be a TableSchema, got {type(schema).__name__}")
    if not isinstance(need_label, bool):
        raise TypeError(f"need_label must be a bool, got {need_label!r}")
    has_label = schema.label is not None
    for file in list_shards(path):
        if fmt == "criteo":
            has_label = _check_criteo(file, schema, need_label) and has_label
            continue
        names = file_columns(file, fmt)
        wanted = [("id column", schema.id_column)] if schema.id_column is not None else []
        if need_label:
            wanted += [("label", n) for n in schema.labels]
        wanted += [("dense", n) for n in schema.dense]
        wanted += [("categorical", n) for n in schema.categorical]
        wanted += [("multi-valued", n) for n in schema.multi_valued_names]
        if need_label and schema.weight is not None:
            wanted.append(("weight", schema.weight))
        if schema.group is not None:
            wanted.append(("group column", schema.group))
        missing = [(what, n) for what, n in wanted if n not in names]
        if missing:
            raise BadInputError(
                f"lacks {describe_missing(missing, names)}; it has columns {show_columns(names)}",
                file=str(file), reason="bad_file",
            )
        doubled = repeated([n for n in names if n in schema.column_names])
        if doubled:
            raise BadInputError(f"column(s) {doubled} appear more than once",
                                file=str(file), reason="bad_file")
        has_label = has_label and all(n in names for n in schema.labels)
    return has_label
