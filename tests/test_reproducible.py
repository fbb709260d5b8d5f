"""MKL's strict mode: matrix products give the same bits on one thread and on two."""

from __future__ import annotations

from fresh_process import run_python

_PROBE = """
import crossrank, os, torch
g = torch.Generator().manual_seed(0)
x, dy = torch.rand(2048, 48, generator=g), torch.rand(2048, 128, generator=g)
w = torch.rand(48, generator=g)
out = []
for threads in (1, 2):
    torch.set_num_threads(threads)
    out.append((dy.t() @ x, (x @ w.unsqueeze(1)).squeeze(1)))
print(os.environ["MKL_CBWR"], all(torch.equal(a, b) for a, b in zip(*out)))
"""


def _run(value: str | None) -> list[str]:
    return run_python(_PROBE, variable="MKL_CBWR", value=value)


def test_importing_crossrank_makes_products_thread_count_free():
    # a weight gradient's product over a batch of 2,048 rows, and a layer's (N, 1) product
    assert _run(None) == ["AUTO,STRICT", "True"]


def test_a_value_the_user_set_is_kept():
    assert _run("AUTO")[0] == "AUTO"
