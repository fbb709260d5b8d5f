"""Write a table as Criteo TSV, CSV or Parquet: the inverse of the readers.

Criteo TSV has no header and writes the table's columns in order (so order them ``label?,
dense..., categorical...``); missing values are empty fields. CSV writes a header. Integers
are written as integers, never as floats.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from crossrank.data.files import FORMATS, Format


def write_table(table: pa.Table, path: str | Path, *, fmt: Format) -> None:
    """Write ``table`` to ``path`` in ``fmt``.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "t.tsv")
        >>> write_table(pa.table({"y": [1, 0], "c": ["a", None]}), p, fmt="criteo")
        >>> open(p).read()
        '1\\ta\\n0\\t\\n'
    """
    if not isinstance(table, pa.Table):
        raise TypeError(f"table must be a pyarrow Table, got {type(table).__name__}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    path = Path(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, str(path))
        return
    options = pa_csv.WriteOptions(
        include_header=fmt == "csv",
        delimiter="\t" if fmt == "criteo" else ",",
        quoting_style="none" if fmt == "criteo" else "needed",
    )
    pa_csv.write_csv(table, str(path), write_options=options)
