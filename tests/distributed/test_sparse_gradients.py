"""The sparse tables' gradients averaged over 2 gloo ranks after the backward pass
(crossrank.distributed.sparse_gradients) equal DDP's average computed by hand in float64, on
every rank alike; tables are left out of DDP but start from rank 0's weights."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from launch import run_ranks, transcript

from crossrank.distributed.sparse_gradients import SparseGradientAverager, sparse_tables

WORKER = Path(__file__).with_name("sparse_gradient_worker.py")
sys.path.insert(0, str(WORKER.parent))
from sparse_gradient_worker import build_tables, lookups  # noqa: E402

SPARSE = ("wide", "narrow", "rank0_only", "unused")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("sparse-gradients")
    results = run_ranks(WORKER, [str(out)], timeout=120)
    assert [code for code, _ in results] == [0, 0], transcript(results)
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]


def test_every_rank_starts_from_rank_0s_weights(ranks):
    torch.manual_seed(0)
    rank0 = build_tables()  # the worker's rank 0 built its tables after the same seed
    for name, module in rank0.t.items():
        for pname, p in module.named_parameters():
            key = f"{name}.{pname}"
            np.testing.assert_array_equal(ranks[0][key], p.detach().numpy(), err_msg=key)
            np.testing.assert_array_equal(ranks[1][key], p.detach().numpy(), err_msg=key)


def test_gradients_are_the_ranks_average_on_every_rank(ranks):
    torch.manual_seed(0)
    tables = build_tables()
    for module in tables.t.values():  # the reference: dense gradients, each rank's in turn
        if isinstance(module, torch.nn.Embedding):
            module.sparse = False
    per_rank = []
    for rank in range(2):
        tables.zero_grad(set_to_none=True)
        tables(lookups(rank), rank).backward()
        per_rank.append({f"{n}.weight": None if m.weight.grad is None else m.weight.grad.clone()
                         for n, m in tables.t.items() if isinstance(m, torch.nn.Embedding)})
    for name in SPARSE:
        key = f"{name}.weight"
        grads = [g[key] for g in per_rank if g[key] is not None]
        if not grads:  # nobody looked it up: no gradient on any rank
            assert f"{key}.grad" not in ranks[0] and f"{key}.grad" not in ranks[1]
            continue
        expected = (sum(grads) / 2).numpy()  # a rank without a gradient adds nothing
        assert np.abs(expected).max() > 0
        for r in range(2):
            np.testing.assert_allclose(ranks[r][f"{key}.grad"], expected, rtol=1e-12,
                                       atol=1e-14, err_msg=f"{key}, rank {r}")
        np.testing.assert_array_equal(ranks[0][f"{key}.grad"], ranks[1][f"{key}.grad"])
    # the dense table stays with DDP, which averages it as well
    expected = ((per_rank[0]["dense_table.weight"] + per_rank[1]["dense_table.weight"]) / 2)
    np.testing.assert_allclose(ranks[0]["dense_table.weight.grad"], expected.numpy(),
                               rtol=1e-12)


def test_sparse_tables_are_the_sparse_embeddings():
    assert [n for n, _ in sparse_tables(build_tables())] == [f"t.{n}.weight" for n in SPARSE]


def test_one_process_leaves_gradients_alone():
    table = torch.nn.Embedding(4, 2, sparse=True)
    table(torch.tensor([2, 2, 0])).sum().backward()
    before = table.weight.grad
    SparseGradientAverager([("weight", table.weight)]).average()
    assert table.weight.grad is before


def test_tables_of_two_dtypes_are_refused():
    with pytest.raises(ValueError, match="several dtypes"):
        SparseGradientAverager([("a", torch.nn.Embedding(2, 2).weight),
                                ("b", torch.nn.Embedding(2, 2).double().weight)])
