"""Property-based fuzzing of the text readers: random bytes, field counts, encodings, line
endings and compression damage. Whatever the file holds, a reader yields rows or raises
:class:`BadInputError`, never anything else; it never loses or duplicates a row (rows in =
rows out + rejects, the rows in counted from how the file was built); error mode stops at the
first reject skip mode logs; nothing is printed.

Deterministic (``derandomize=True``) and bounded (150 examples of small files, a few seconds).
"""

from __future__ import annotations

import bz2
import gzip
import json
import re
from dataclasses import dataclass

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossrank.data import BadInputError, RejectsLog, TableSchema, read_table

SCHEMA = TableSchema(label="label", dense=("I1", "I2"), categorical=("C1", "C2"))
HEADER = b"label,I1,I2,C1,C2"
FIRST_ID = 1_000_003  # good rows carry I1 = FIRST_ID + k: found again in the output
ENCODINGS = ["utf-8", "latin-1", "utf-16-le", "cp1252", "utf-8-sig", "shift_jis"]


@dataclass(frozen=True)
class Built:
    """A file and what went into it."""

    fmt: str
    data: bytes  # uncompressed
    records: int  # data rows (records) in the file
    good_ids: list[int]  # I1 of the rows built valid, in order
    good_lines: list[int]  # their physical lines
    lines: int  # physical lines in all


def _strip(value: bytes, structural: bytes) -> bytes:
    return bytes(b for b in value if b not in structural)


@st.composite
def _value(draw: st.DrawFn, structural: bytes) -> bytes:
    kind = draw(st.sampled_from(["text", "bytes", "number", "empty"]))
    if kind == "text":
        text = draw(st.text(max_size=6))
        value = text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    elif kind == "bytes":
        value = draw(st.binary(max_size=8))
    elif kind == "number":
        value = draw(st.sampled_from([b"0", b"1", b"-2.5", b"1e3", b"nan", b"inf", b" 3", b"0x1"]))
    else:
        value = b""
    return _strip(value, structural)


@st.composite
def _good_field(draw: st.DrawFn, fmt: str) -> bytes:
    """A valid UTF-8 categorical value (quoted at random in CSV, then it may hold , and ")."""
    text = draw(st.text(st.characters(exclude_categories=("Cs",)), max_size=6))
    raw = _strip(text.encode("utf-8"), b"\r\n\t")
    if fmt == "csv" and draw(st.booleans()):
        return b'"' + raw.replace(b'"', b'""') + b'"'
    return _strip(raw, b'",')


@st.composite
def built_files(draw: st.DrawFn) -> Built:
    fmt = draw(st.sampled_from(["criteo", "csv"]))
    sep = b"\t" if fmt == "criteo" else b","
    structural = b"\r\n" + sep + (b'"' if fmt == "csv" else b"")
    records: list[tuple[bytes, bool, int]] = []  # (record, built valid, line breaks inside)
    good_ids: list[int] = []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):  # a valid row
            row_id = FIRST_ID + len(good_ids)
            good_ids.append(row_id)
            fields = [draw(st.sampled_from([b"0", b"1"])), b"%d" % row_id,
                      draw(st.sampled_from([b"", b"2", b"-0.5", b"3e2"])),
                      draw(_good_field(fmt)), draw(_good_field(fmt))]
            records.append((sep.join(fields), True, 0))
            continue
        n = draw(st.integers(0, 8))  # garbage: any number of fields of anything
        fields = [draw(_value(structural)) for _ in range(n)]
        breaks = 0
        if fmt == "csv" and fields and draw(st.integers(0, 4)) == 0:
            # a quoted value spanning lines: one record over several physical lines
            inner = draw(st.sampled_from([b"a\nb", b"\r\n", b"x\r\ny\nz"]))
            breaks = len(re.findall(rb"\r\n|\r|\n", inner))
            fields[0] = b'"' + inner + b'"'
        records.append((sep.join(fields), False, breaks))
    ends = [draw(st.sampled_from([b"\n", b"\r\n"])) for _ in records]
    if ends and records[-1][0] and draw(st.booleans()):
        ends[-1] = b""  # no line break after the last record
    head = [HEADER + draw(st.sampled_from([b"\n", b"\r\n"]))] if fmt == "csv" else []
    data = b"".join(head + [r + e for (r, _, _), e in zip(records, ends, strict=True)])
    line = 1 + len(head)
    good_lines = []
    for _, valid, breaks in records:
        if valid:
            good_lines.append(line)
        line += 1 + breaks
    return Built(fmt, data, len(records), good_ids, good_lines, line - 1)


def _compress(codec: str, data: bytes) -> bytes:
    if codec == "gz":
        return gzip.compress(data)
    if codec == "bz2":
        return bz2.compress(data)
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as f:
        f.write(data)
    return sink.getvalue().to_pybytes()


def _read(path, fmt, tmp_path, *, header_may_fail=False):
    """Skip mode: (rows read, the rejects logged); error mode: the table or the error.

    A CSV header that cannot be read raises in both modes (``header_may_fail``): then
    (None, the error)."""
    try:
        strict: pa.Table | BadInputError = read_table(path, fmt=fmt, schema=SCHEMA)
    except BadInputError as e:
        strict = e
    with RejectsLog(tmp_path / "rejects.jsonl") as log:
        try:
            table = read_table(path, fmt=fmt, schema=SCHEMA, on_bad_rows="skip", rejects=log)
        except BadInputError as e:
            assert header_may_fail and e.line == 1 and str(e) == str(strict)
            return None, e
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert sum(log.counts.values()) == len(rejects)
    if rejects:  # error mode raises at the first bad row skip mode logged
        assert isinstance(strict, BadInputError)
        assert (strict.line, strict.reason) == (rejects[0]["line"], rejects[0]["reason"])
        assert "\n" not in str(strict) and str(strict).startswith(str(path))
    else:
        assert isinstance(strict, pa.Table) and strict.equals(table)
    return table, rejects


FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@FUZZ
@given(built=built_files(), codec=st.sampled_from([None, None, "gz", "bz2", "zst"]))
def test_every_row_is_read_or_rejected_exactly_once(built, codec, tmp_path, capfd):
    suffix = {"criteo": "tsv", "csv": "csv"}[built.fmt]
    path = tmp_path / (f"f.{suffix}" + (f".{codec}" if codec else ""))
    path.write_bytes(_compress(codec, built.data) if codec else built.data)
    if built.fmt == "criteo":  # the rows in, counted from the bytes as well
        pieces = re.split(rb"\r\n|\r|\n", built.data)
        assert len(pieces) - (pieces[-1] == b"") == built.records
    table, rejects = _read(path, built.fmt, tmp_path)
    reasons = [r["reason"] for r in rejects]
    file_level = reasons.count("empty_file")
    assert file_level == (built.records == 0) and "bad_file" not in reasons
    assert table.num_rows + len(rejects) - file_level == built.records
    # every row built valid comes out once, in order; none of them is ever rejected
    ids = [int(v) for v in table["I1"].to_pylist() if v is not None and v >= FIRST_ID]
    assert ids == built.good_ids
    lines = [r["line"] for r in rejects if r["reason"] != "empty_file"]
    assert lines == sorted(set(lines)) and set(lines).isdisjoint(built.good_lines)
    assert all(1 <= n <= built.lines for n in lines)
    assert capfd.readouterr() == ("", "")


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@FUZZ
@given(built=built_files(), codec=st.sampled_from(["gz", "bz2", "zst"]),
       damage=st.sampled_from(["truncate", "flip"]), where=st.floats(0.0, 1.0),
       flips=st.binary(min_size=1, max_size=4))
def test_damaged_streams_end_in_one_bad_piece_never_a_crash(built, codec, damage, where,
                                                            flips, tmp_path, capfd):
    suffix = {"criteo": "tsv", "csv": "csv"}[built.fmt]
    path = tmp_path / f"f.{suffix}.{codec}"
    whole = bytearray(_compress(codec, built.data))
    at = min(int(where * len(whole)), len(whole) - 1)
    if damage == "truncate":
        del whole[at:]
    else:
        for k, b in enumerate(flips):
            whole[min(at + k, len(whole) - 1)] ^= b or 0xFF
    path.write_bytes(bytes(whole))
    # only BadInputError, never a crash
    table, rejects = _read(path, built.fmt, tmp_path, header_may_fail=built.fmt == "csv")
    if table is None:
        return
    reasons = [r["reason"] for r in rejects]
    assert reasons.count("bad_file") <= 1 and reasons.count("empty_file") <= 1
    if "bad_file" in reasons:  # the damage ends the file: nothing is reported after it
        assert reasons[-1] == "bad_file"
    if damage == "truncate":  # what was read is the genuine start of the file
        assert rejects, "a truncated stream is always noticed"
        ids = [int(v) for v in table["I1"].to_pylist() if v is not None and v >= FIRST_ID]
        assert ids == built.good_ids[: len(ids)]
        assert table.num_rows + len(rejects) - 1 <= built.records
    assert capfd.readouterr() == ("", "")
