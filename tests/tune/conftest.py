from __future__ import annotations

from pathlib import Path

import pytest
from tune_data import write_clicks


@pytest.fixture
def clicks(tmp_path: Path) -> Path:
    return write_clicks(tmp_path / "clicks.csv")
