"""The row-wise sparse optimizers equal torch's own (Adagrad, SparseAdam, SGD) step for step
in float64 on random ids with repeats, keep torch's state layout, and touch no other row."""

import copy
import warnings

import pytest
import torch

from crossrank.train.rowwise_optim import RowwiseAdagrad, RowwiseSGD, RowwiseSparseAdam

PAIRS = [
    (RowwiseAdagrad, torch.optim.Adagrad, {"lr": 0.05, "lr_decay": 0.01,
                                           "initial_accumulator_value": 0.1, "eps": 1e-10}),
    (RowwiseSparseAdam, torch.optim.SparseAdam, {"lr": 0.01, "betas": (0.8, 0.99),
                                                 "eps": 1e-8}),
    (RowwiseSGD, torch.optim.SGD, {"lr": 0.1}),
]


def _tables(seed: int, rows: int, dim: int):
    torch.manual_seed(seed)
    mine = torch.nn.Embedding(rows, dim, sparse=True).double()
    ref = torch.nn.Embedding(rows, dim, sparse=True).double()
    ref.load_state_dict(mine.state_dict())
    return mine, ref


@pytest.mark.parametrize("ours,theirs,options", PAIRS, ids=["adagrad", "adam", "sgd"])
def test_each_step_equals_torch_in_float64(ours, theirs, options):
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    g = torch.Generator().manual_seed(1)
    for seed, (rows, dim) in enumerate([(50, 4), (7, 3), (300, 1)]):
        mine, ref = _tables(seed, rows, dim)
        opt_mine, opt_ref = ours(mine.parameters(), **options), theirs(ref.parameters(),
                                                                          **options)
        for step in range(6):
            # repeats within a batch (few rows: many), a row touched in some steps only, and
            # one step where the table gets no gradient at all
            ids = torch.randint(0, max(rows // 3, 1), (int(torch.randint(1, 40, (1,),
                                                                       generator=g)),),
                                generator=g)
            weights = torch.randn(len(ids), dim, generator=g, dtype=torch.float64)
            for table, opt in ((mine, opt_mine), (ref, opt_ref)):
                opt.zero_grad(set_to_none=True)
                if step != 3:
                    (table(ids) * weights).sum().backward()
                opt.step()
            torch.testing.assert_close(mine.weight, ref.weight, rtol=1e-13, atol=1e-13)
        ref_state = opt_ref.state_dict()["state"]
        assert opt_mine.state_dict()["state"].keys() == ref_state.keys()  # SGD: none
        for key, value in ref_state.get(0, {}).items():
            got = opt_mine.state_dict()["state"][0][key]
            assert type(got) is type(value), key
            torch.testing.assert_close(torch.as_tensor(got), torch.as_tensor(value),
                                       rtol=1e-13, atol=1e-13, msg=key)


@pytest.mark.parametrize("ours,theirs,options", PAIRS, ids=["adagrad", "adam", "sgd"])
def test_a_torch_checkpoint_loads_and_only_touched_rows_move(ours, theirs, options):
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    mine, ref = _tables(0, 20, 4)
    opt_ref = theirs(ref.parameters(), **options)
    ids = torch.tensor([1, 5, 5, 9])
    ref(ids).sum().backward()
    opt_ref.step()
    mine.load_state_dict(copy.deepcopy(ref.state_dict()))
    opt_mine = ours(mine.parameters(), **options)
    # torch's state resumes here (copied, as a checkpoint file would give it)
    opt_mine.load_state_dict(copy.deepcopy(opt_ref.state_dict()))
    before = mine.weight.detach().clone()
    for table, opt in ((mine, opt_mine), (ref, opt_ref)):
        opt.zero_grad()
        table(torch.tensor([5, 12, 12])).sum().backward()
        opt.step()
    torch.testing.assert_close(mine.weight, ref.weight, rtol=1e-13, atol=1e-13)
    moved = sorted(set(torch.nonzero(mine.weight != before)[:, 0].tolist()))
    assert moved == [5, 12]


def test_a_dense_gradient_is_refused():
    table = torch.nn.Embedding(5, 2)  # dense gradients
    opt = RowwiseAdagrad(table.parameters())
    table(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients only"):
        opt.step()
