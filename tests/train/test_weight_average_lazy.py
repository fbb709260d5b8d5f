"""The weight average of sparse-gradient tables, kept lazily (train/averaging.py): the rows an
update changes are averaged at that update, the others brought up to date by the closed form
when the average is read; the same values as averaging every row at every update."""

import pytest
import torch
from torch import nn

from crossrank.train.averaging import WeightAverage

DECAY = 0.9


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(40, 3, sparse=True)
        self.out = nn.Linear(3, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.table(ids).sum(1)).squeeze(1)


def _setup(seed=0):
    torch.manual_seed(seed)
    model = _Model().double()
    dense = torch.optim.Adam(model.out.parameters(), lr=0.05)
    sparse = torch.optim.SparseAdam([model.table.weight], lr=0.05)
    return model, dense, sparse


def _step(model, dense, sparse, g, *lazy):
    """One update on a batch of ids 0..29 (rows 30..39 are never looked up); every third
    update does not look the table up at all (no gradient for it)."""
    dense.zero_grad()
    sparse.zero_grad()
    ids = torch.randint(0, 30, (8, 2), generator=g)
    x = model(ids) if int(torch.randint(0, 3, (1,), generator=g)) else model.out(
        torch.ones(8, 3, dtype=torch.float64)).squeeze(1)
    ((x - 1.0) ** 2).mean().backward()
    for average in lazy:
        average.before_step()
    dense.step()
    if model.table.weight.grad is not None:
        sparse.step()


def test_the_lazy_average_equals_the_average_of_every_row_at_every_update():
    model, dense, sparse = _setup()
    initial = model.table.weight.detach().clone()
    full = WeightAverage(model, decay=DECAY)
    lazy = WeightAverage(model, decay=DECAY, lazy_tables=[("table.weight",
                                                           model.table.weight)])
    g = torch.Generator().manual_seed(1)
    assert lazy._rebase_every == 189  # d^-189 <= e^20 at d 0.9: the run below passes it twice
    for t in range(1, 421):
        _step(model, dense, sparse, g, lazy)
        full.update()
        lazy.update()
        if t in (1, 2, 7, 23, 188, 189, 190, 250, 379, 420):  # read mid-run, then go on
            a, b = full.averages(), lazy.averages()
            assert a.keys() == b.keys()
            for name in a:
                torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-12)
    # rows never looked up: their average is their (unchanged) weight
    torch.testing.assert_close(lazy.averages()["table.weight"][30:], initial[30:],
                               rtol=0, atol=0)
    with full.applied():
        expected = model.table.weight.detach().clone()
    with lazy.applied():
        torch.testing.assert_close(model.table.weight.detach(), expected, rtol=0, atol=1e-12)


def test_an_update_leaves_the_rows_it_did_not_change_for_later():
    model, dense, sparse = _setup()
    lazy = WeightAverage(model, decay=DECAY, lazy_tables=[("table.weight",
                                                           model.table.weight)])
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        _step(model, dense, sparse, g, lazy)
        lazy.update()
    residual = lazy._residual["table.weight"]  # (avg - w) scaled: moves only with its row
    assert (residual[30:] == 0).all()  # rows never looked up
    assert (residual[:30] != 0).any()
    assert "table.weight" not in lazy._shadow  # no copy of the table kept besides it


def test_the_lazy_average_needs_before_step_and_resumes_from_a_checkpoint():
    model, dense, sparse = _setup()
    tables = [("table.weight", model.table.weight)]
    lazy = WeightAverage(model, decay=DECAY, lazy_tables=tables)
    with pytest.raises(RuntimeError, match="call before_step"):
        lazy.update()
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        _step(model, dense, sparse, g, lazy)
        lazy.update()
    again = WeightAverage(model, decay=DECAY, lazy_tables=tables)  # from the checkpoint
    again.load_state_dict(lazy.state_dict(), lazy.updates)
    for _ in range(6):  # both see the same updates from here
        _step(model, dense, sparse, g, lazy, again)
        lazy.update()
        again.update()
    for name, value in lazy.averages().items():
        torch.testing.assert_close(again.averages()[name], value, rtol=0, atol=1e-12)


def test_a_checkpoint_that_kept_averages_resumes_to_the_same_averages():
    """Checkpoints written before the tables' averages were kept as residuals hold the
    averages themselves (``residuals=False``)."""
    model, dense, sparse = _setup()
    tables = [("table.weight", model.table.weight)]
    lazy = WeightAverage(model, decay=DECAY, lazy_tables=tables)
    g = torch.Generator().manual_seed(4)
    for _ in range(7):
        _step(model, dense, sparse, g, lazy)
        lazy.update()
    older = WeightAverage(model, decay=DECAY, lazy_tables=tables)
    older.load_state_dict(lazy.averages(), lazy.updates, residuals=False)
    for name, value in lazy.averages().items():
        torch.testing.assert_close(older.averages()[name], value, rtol=0, atol=1e-12)
