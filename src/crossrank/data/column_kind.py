"""The kind of one feature column, dense or categorical, read off a sample of its values.

This is the rule :func:`~crossrank.data.infer.infer_schema` applies. The first step that fits
decides:

1. Every value missing in the sample: **categorical**. Nothing tells the kind, and a
   categorical field accepts whatever values come later (a dense one would reject text).
2. Text (some value is not a number: ``'05db9164'``, ``'M'``, ``'NA'``): **categorical**.
3. ``true``/``false`` values: **categorical**.
4. Floating-point numbers (a value like ``260.0`` or ``1e-3``; Parquet float and decimal
   types): **dense**. Nobody writes an id as ``12.0`` on purpose; pandas does, for an integer
   column with missing values, so name such a column in ``categorical=``.
5. Integers: an id or code, or a count or amount? The values say which:

   a. A word of the column's name is one of :data:`ID_WORDS` (``user_id``, ``movieId``,
      ``zip_code``): **categorical**. The name is the surest sign, and an id taken as a number
      is meaningless (and inexact beyond 2**24 in float32).
   b. Some value is written with a leading zero (``02139``, ``007``): **categorical**; such
      codes are labels, since ``007`` and ``7`` are different values.
   c. The distinct values fill at least :data:`MIN_FILL` (80%) of the range from the smallest
      to the largest and each appears :data:`MIN_REPEATS` (2) times or more on average:
      **categorical**. Ids numbered 1..N and small codes (ages, hours, ratings) fill their
      range; counts, amounts and timestamps spread thinly over a wide one. MovieLens 100K:
      users fill 943 of 1..943, movies 1682 of 1..1682, ages 61 of 7..73 (91%), timestamps
      under 1%. Criteo's counts (I1..I13 as integers, first 10,000 rows) fill 0.3% to 69% of
      their ranges, except I10 (6 values in 0..6).
   d. Otherwise **dense**.

6. Any other Arrow type (a Parquet timestamp, list or struct): **unsupported**, left out of
   the schema and shown as such in the report; convert it to read it as a feature.

A sample with few rows fills less of an id's range than the whole file does, so the rule is
meant for samples of thousands of rows; an explicit ``dense=``/``categorical=`` always wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

Kind = Literal["dense", "categorical", "unsupported"]

ID_WORDS: frozenset[str] = frozenset({"id", "key", "code", "zip", "zipcode", "postcode", "hash"})
MIN_FILL = 0.8
MIN_REPEATS = 2.0


@dataclass(frozen=True)
class KindDecision:
    """What the rule decided for one column: the kind, the values' Arrow type and the step
    that decided, in words."""

    kind: Kind
    arrow_type: str
    reason: str


def name_words(name: str) -> list[str]:
    """The lower-case words of a column name (``_``, ``-``, spaces, camelCase split).

    Example:
        >>> name_words("userID"), name_words("movieId"), name_words("zip_code")
        (['user', 'id'], ['movie', 'id'], ['zip', 'code'])
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def _casts(values: pa.Array, to: pa.DataType) -> bool:
    try:
        pc.cast(values, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _first_failure(values: pa.Array, to: pa.DataType) -> int:
    """Index of the first value that does not cast to ``to`` (one must exist), by bisection."""
    lo, hi = 0, len(values)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _casts(values.slice(lo, mid - lo), to):
            lo = mid
        else:
            hi = mid
    return lo


def _show(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    text = str(value)
    return repr(text if len(text) <= 24 else text[:21] + "...")


def _integer_kind(name: str, uniques: pa.Array, rows: int, arrow_type: str,
                  *, text: pa.Array | None) -> KindDecision:
    """Step 5 on the distinct values (as integers) of ``rows`` present values."""
    words = [w for w in name_words(name) if w in ID_WORDS]
    if words:
        return KindDecision("categorical", arrow_type,
                            f"integers named like an id ({words[0]!r} in {name!r})")
    if text is not None:
        zeros = pc.match_substring_regex(text, r"^[+-]?0[0-9]")
        if pc.any(zeros).as_py():
            example = text.filter(zeros)[0].as_py()
            return KindDecision("categorical", arrow_type,
                                f"integer codes written with a leading zero, e.g. {_show(example)}")
    bounds = pc.min_max(uniques).as_py()
    lo, hi = int(bounds["min"]), int(bounds["max"])
    distinct = len(uniques)
    fill = distinct / (hi - lo + 1)
    repeats = rows / distinct
    if fill >= MIN_FILL and repeats >= MIN_REPEATS:
        return KindDecision(
            "categorical", arrow_type,
            f"integers fill {fill:.0%} of {lo}..{hi}, {repeats:.0f} rows per value: ids or codes",
        )
    if fill >= MIN_FILL:
        return KindDecision(
            "dense", arrow_type,
            f"integers, {repeats:.1f} rows per value: too many distinct values for ids or codes",
        )
    return KindDecision("dense", arrow_type,
                        f"integers fill {fill:.1%} of {lo}..{hi}: counts, amounts or times")


def _text_kind(name: str, present: pa.Array) -> KindDecision:
    """Steps 2 to 5 for text as the readers see it (``binary`` fields of a CSV or TSV file)."""
    uniques = pc.unique(present)
    for int_type in (pa.int64(), pa.uint64()):
        if _casts(uniques, int_type):
            return _integer_kind(name, pc.cast(uniques, int_type), len(present), str(int_type),
                                 text=uniques)
    if _casts(uniques, pa.float64()):
        return KindDecision("dense", "double", "floating-point numbers")
    if _casts(uniques, pa.bool_()):
        return KindDecision("categorical", "bool", "true/false values")
    example = uniques[_first_failure(uniques, pa.float64())].as_py()
    return KindDecision("categorical", "string", f"text, e.g. {_show(example)}")


def decide_kind(name: str, values: pa.Array, *, text: bool) -> KindDecision:
    """Dense, categorical or unsupported, by the rule in this module's docstring.

    Args:
        name: the column's name (step 5a reads it).
        values: the sampled values, missing ones as nulls.
        text: ``True`` for fields of a text file (``binary``, parsed here the way the readers
            parse them), ``False`` for typed (Parquet) columns.

    Shape:
        values (n,) -> one decision.

    Example:
        >>> decide_kind("age", pa.array([b"24", b"53", b"24", b"53", b"41"]), text=True).kind
        'dense'
        >>> decide_kind("user_id", pa.array([7, 123456, 7]), text=False).reason
        "integers named like an id ('id' in 'user_id')"
        >>> decide_kind("hour", pa.array(list(range(24)) * 3), text=False).kind
        'categorical'
        >>> decide_kind("zip", pa.array([b"02139", None]), text=True).reason
        "integers named like an id ('zip' in 'zip')"
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    present = values.drop_null()
    arrow_type = "null" if text else str(values.type)
    if len(present) == 0:
        return KindDecision("categorical", arrow_type,
                            "no value in the sample: categorical accepts any value")
    if text:
        return _text_kind(name, present)
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) \
            or pa.types.is_large_binary(t):
        return KindDecision("categorical", arrow_type, "text")
    if pa.types.is_boolean(t):
        return KindDecision("categorical", arrow_type, "true/false values")
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return KindDecision("dense", arrow_type, "floating-point numbers")
    if pa.types.is_integer(t):
        return _integer_kind(name, pc.unique(present), len(present), arrow_type, text=None)
    return KindDecision("unsupported", arrow_type,
                        f"type {t} is neither a number nor text: convert it to use it")
