"""pyarrow's memory pool: jemalloc for the command's process, unless the user chose one."""

from __future__ import annotations

import pyarrow as pa
import pytest
from fresh_process import run_python

import crossrank.cli as cli

_SHOW = ("from crossrank.data.memory_pool import prefer_jemalloc; import pyarrow as pa; "
         "print(prefer_jemalloc(), pa.default_memory_pool().backend_name)")


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


def _run(env_pool: str | None) -> list[str]:
    return run_python(_SHOW, variable="ARROW_DEFAULT_MEMORY_POOL", value=env_pool)


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow has no jemalloc")
def test_jemalloc_becomes_the_default_pool():
    assert _run(None) == ["jemalloc", "jemalloc"]


def test_the_users_choice_wins():
    assert _run("system") == ["system", "system"]


def test_the_command_chooses_the_pool_before_it_runs(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(cli, "prefer_jemalloc", lambda: calls.append(1) or "jemalloc")
    assert cli.main(["evaluate", str(tmp_path / "no-model"), "--data", "x.tsv"]) == 2
    assert calls == [1]
    assert "error" in capsys.readouterr().err
