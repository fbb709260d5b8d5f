"""Fixtures for the data tests: the shared real data (read in place, never copied) and small
file writers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

# ../shared/data beside the repository root; its terms forbid copying it into the repository.
SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture
def criteo_dir() -> Path:
    return _shared("criteo")


@pytest.fixture
def movielens_dir() -> Path:
    return _shared("movielens-100k")


@pytest.fixture
def write_lines(tmp_path: Path) -> Callable[[str, Sequence[bytes | str]], Path]:
    """Write lines (bytes kept as they are, str as UTF-8) joined by \\n plus a final \\n."""

    def write(name: str, lines: Sequence[bytes | str]) -> Path:
        path = tmp_path / name
        raw = [line.encode("utf-8") if isinstance(line, str) else line for line in lines]
        path.write_bytes(b"\n".join(raw) + b"\n")
        return path

    return write
