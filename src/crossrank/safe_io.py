"""Files written for users and read back (STYLE rule 18): whole or not at all, checksummed,
and never a path from inside a file out of its own directory.

* **Whole or not at all**: :func:`atomic_path` hands out a temporary name beside the final one
  (``.NAME.tmpPID``); when the write has ended, the file is flushed to disk and renamed over
  the final name (``os.replace``, atomic on POSIX and Windows), so a reader sees the old file
  or the new one, never part of one. A write that raises leaves no temporary file behind.
* **Checksums**: SHA-256 of a file's bytes (:func:`sha256_file`); :func:`verify_sha256` names
  the file whose bytes are no longer the ones recorded.
* **Names from inside files**: :func:`plain_name` and :func:`relative_file` accept only names
  of files inside the directory (no ``..``, no absolute path, no drive), so a damaged or
  crafted JSON file cannot make crossrank open ``../../etc/passwd``.
* **JSON read back**: :func:`read_json_object` is one line naming the file for a file that is
  missing, cut short, not JSON or not an object; :func:`file_error` turns the ``KeyError``
  or ``TypeError`` of a missing or mistyped entry into one naming the file and the key.

A leaf every room may use (it imports only :mod:`crossrank.errors`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

from crossrank.errors import ModelFileError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "file_error", "plain_name",
           "read_json_object", "relative_file", "sha256_bytes", "sha256_file", "verify_sha256"]

_PIECE = 1 << 20  # bytes hashed per read


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a directory after a rename in it) to disk where the system
    allows it (a directory cannot be opened on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends,
    removed when it raises.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(p) as tmp:
        ...     _ = tmp.write_text("whole")
        >>> p.read_text(), sorted(x.name for x in p.parent.iterdir())
        ('whole', ['a.txt'])
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def atomic_link(source: str | Path, path: str | Path) -> None:
    """Make ``path`` hold what ``source`` holds now, whole or not at all: a hard link when the
    file system allows one (no bytes written), else a copy.

    Safe because every file here is replaced by a rename, never rewritten in place: a later
    write to ``source`` makes a new file and leaves the one ``path`` links to unchanged.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> atomic_write_bytes(d / "a", b"one")
        >>> atomic_link(d / "a", d / "b")
        >>> atomic_write_bytes(d / "a", b"two")
        >>> (d / "b").read_bytes()
        b'one'
    """
    with atomic_path(path) as tmp:
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (another device, some network file systems)
            shutil.copyfile(source, tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` whole or not at all."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 of ``data``, as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of the file at ``path``, read 1 MiB at a time.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x"
        >>> atomic_write_bytes(p, b"abc")
        >>> sha256_file(p) == sha256_bytes(b"abc")
        True
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while piece := fh.read(_PIECE):
            digest.update(piece)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, *, recorded_in: Path) -> None:
    """Raise a one-line :class:`ModelFileError` naming ``path`` unless its bytes have the
    SHA-256 ``expected`` (recorded in the file ``recorded_in``)."""
    if not path.is_file():
        raise ModelFileError(f"{path}: missing ({recorded_in.name} records its checksum)")
    found = sha256_file(path)
    if found != expected:
        raise ModelFileError(f"{path}: damaged, or changed after it was written: its SHA-256 "
                             f"is {found[:16]}..., {recorded_in.name} records {expected[:16]}...")


def plain_name(name: Any, *, source: Path, key: str) -> str:
    """``name`` when it is the plain name of a file in ``source``'s directory (no directory
    part, not ``.`` or ``..``, not absolute); else a :class:`ModelFileError` naming ``source``
    (the file the name was read from) and ``key``.

    Example:
        >>> plain_name("vocab.arrow", source=Path("enc/encoder.json"), key="vocab_file")
        'vocab.arrow'
        >>> try:
        ...     plain_name("../x", source=Path("enc/encoder.json"), key="vocab_file")
        ... except ModelFileError as err:
        ...     print(err)
        enc/encoder.json: vocab_file must name a file in its own directory, got '../x'
    """
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name
            or "\0" in name or os.path.isabs(name) or PureWindowsPath(name).drive):
        raise ModelFileError(f"{source}: {key} must name a file in its own directory, "
                             f"got {name!r}")
    return name


def relative_file(directory: Path, name: Any, *, source: Path, key: str) -> Path:
    """``directory / name`` for a ``/``-separated path of plain names inside ``directory``
    (``encoder/vocab.arrow``); else a :class:`ModelFileError` naming ``source`` and ``key``.

    Example:
        >>> relative_file(Path("m"), "encoder/vocab.arrow", source=Path("m/model.json"),
        ...               key="sha256").as_posix()
        'm/encoder/vocab.arrow'
    """
    parts = name.split("/") if isinstance(name, str) else [name]
    try:
        return directory.joinpath(*(plain_name(p, source=source, key=key) for p in parts))
    except ModelFileError:
        raise ModelFileError(f"{source}: {key} must name a file inside {directory}, "
                             f"got {name!r}") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a one-line :class:`ModelFileError` naming the file when it
    is missing, not UTF-8, not JSON (damaged or cut short) or not an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not UTF-8 text (damaged?)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: not valid JSON, damaged or cut short ({err.msg} at line "
                             f"{err.lineno} column {err.colno})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: must hold a JSON object, got {_json_kind(data)}")
    return data


def _json_kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def file_error(path: Path, err: Exception, *, key: str | None = None) -> ModelFileError:
    """A one-line :class:`ModelFileError` naming ``path`` (and ``key``) for the error that
    reading its content raised: a ``KeyError`` is a missing key.

    Example:
        >>> str(file_error(Path("m/model.json"), KeyError("table_schema")))
        "m/model.json: missing key 'table_schema'"
    """
    detail = f"missing key {err}" if isinstance(err, KeyError) else \
        (str(err).splitlines() or [type(err).__name__])[0]
    if isinstance(err, ModelFileError) and detail.startswith(f"{path}: "):
        detail = detail[len(f"{path}: "):]
    return ModelFileError(f"{path}: " + (f"key {key!r}: " if key else "") + detail)
