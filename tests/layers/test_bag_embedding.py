"""BagEmbedding: pooling against an explicit float64 loop, sparse gradients, row L2, export."""

import numpy as np
import pytest
import torch

from crossrank.layers import BagEmbedding, BagFields, FieldEmbedding
from tests.tolerances import assert_close

WIDTH = 20


def _ids(batch, size, seed, width=WIDTH):
    """Rows of random lengths 0..width (duplicates likely), padded with -1."""
    rng = np.random.default_rng(seed)
    ids = np.full((batch, width), -1, dtype=np.int64)
    for r in range(batch):
        n = int(rng.integers(0, width + 1))
        ids[r, :n] = rng.integers(0, size, n)
    ids[0] = -1  # an empty row
    return torch.from_numpy(ids)


def _loop(weight, ids, mode):
    """The pooled vectors, one element at a time in float64."""
    w = weight.detach().double().numpy()
    out = np.zeros((ids.shape[0], w.shape[1]))
    for r, row in enumerate(ids.tolist()):
        rows = [w[i] for i in row if i >= 0]
        if not rows:
            continue  # an empty row pools to 0
        if mode == "sum":
            out[r] = np.sum(rows, axis=0)
        elif mode == "mean":
            out[r] = np.sum(rows, axis=0) / len(rows)
        else:
            out[r] = np.max(rows, axis=0)
    return torch.from_numpy(out)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("reference", [False, True], ids=["embedding_bag", "gather"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_pooling_equals_an_explicit_loop(mode, reference, dtype):
    torch.manual_seed(0)
    layer = BagEmbedding(BagFields((30,), (WIDTH,), (mode,), ("g",)), 5, init_scale=1.0)
    layer.to(dtype)
    ids = _ids(40, 30, seed=1)
    # the gather path is the one export traces and the one an L2 penalty trains with
    if reference:  # padded with the padding row's id
        rows = torch.where(ids < 0, torch.full_like(ids, 30), ids)
        got = layer._reference(rows, layer.tables[0], mode, 30)
    else:  # padded with -1, as the layer's input
        got = layer._bag(ids, layer.tables[0], mode)
    assert_close(got, _loop(layer.tables[0].weight, ids, mode))
    # batch size 1 gives the row it gives inside a batch; the forward path agrees
    assert_close(layer(ids)[:, 0], got)
    for r in (0, 7):
        assert_close(layer(ids[r:r + 1])[:, 0], got[r:r + 1])


def test_several_fields_after_the_categorical_ones():
    bags = BagFields((6, 9), (3, 4), ("mean", "max"), ("genres", "history"))
    emb = FieldEmbedding([5, 7], 4, bags=bags)
    ids = torch.tensor([[1, 6, 0, 5, 5, 2, 8, -1, -1],
                        [0, 0, -1, -1, -1, -1, -1, -1, -1]])
    out = emb(ids)  # (B, F + M, D)
    assert out.shape == (2, 4, 4)
    assert_close(out[:, :2], emb.table.weight[ids[:, :2] + emb.offsets])
    assert_close(out[:, 2], _loop(emb.bags.tables[0].weight, ids[:, 2:5], "mean"))
    assert_close(out[:, 3], _loop(emb.bags.tables[1].weight, ids[:, 5:], "max"))
    assert (out[1, 2:] == 0).all()  # empty rows pool to zero


def test_sparse_gradients_touch_only_the_rows_used_and_row_l2_is_per_occurrence():
    torch.manual_seed(0)
    l2 = 0.3
    for train_l2 in (0.0, l2):
        layer = BagEmbedding(BagFields((50,), (6,), ("sum",), ("g",)), 3, sparse=True,
                             l2=train_l2)
        ids = torch.tensor([[4, 4, 9, -1, -1, -1], [9, 17, -1, -1, -1, -1]])
        layer(ids).sum().backward()
        grad = layer.tables[0].weight.grad
        assert grad.is_sparse
        grad = grad.coalesce()
        assert sorted(set(grad.indices()[0].tolist())) == [4, 9, 17]
        dense = grad.to_dense()
        w = layer.tables[0].weight.detach()
        counts = torch.zeros(51).index_add_(0, torch.tensor([4, 4, 9, 9, 17]), torch.ones(5))
        # d/de of sum pooling is 1 per occurrence; the L2 adds 2 l2 e / B per occurrence
        expected = counts[:, None] * (1.0 + 2.0 * train_l2 / 2 * w)
        assert_close(dense, expected)


def test_the_padding_row_stays_zero_and_bad_ids_are_named():
    layer = BagEmbedding(BagFields((5,), (2,), ("sum",), ("tags",)), 2)
    assert (layer.tables[0].weight[5] == 0).all()
    with pytest.raises(ValueError, match="id 5 out of range .* for tags at batch row 1"):
        layer(torch.tensor([[0, -1], [5, 1]]))
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        layer(torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="pooling"):
        BagFields((5,), (2,), ("median",), ("tags",))


def test_export_traces_the_gather_path():
    torch.manual_seed(0)
    bags = BagFields((8, 8), (4, 4), ("mean", "max"), ("a", "b"))
    # (the categorical ids' range check is data-dependent: the serving work owns that part)
    emb = FieldEmbedding([3], 2, bags=bags, check_ids=False).eval()
    ids = torch.tensor([[1, 2, 3, -1, -1, 0, 7, 7, 7]])
    program = torch.export.export(emb, (ids,))
    assert_close(program.module()(ids), emb(ids))


def test_sparse_gradients_leave_a_max_pooled_table_dense():
    # torch's embedding_bag has no sparse max: that table keeps dense gradients, the others
    # are sparse, and both pool as the reference does
    layer = BagEmbedding(BagFields((6, 9), (3, 4), ("sum", "max"), ("a", "b")), 2, sparse=True)
    ids = torch.tensor([[0, 5, -1, 1, 8, -1, -1], [2, -1, -1, 3, 3, 4, 0]])
    layer(ids).sum().backward()
    grads = [t.weight.grad for t in layer.tables]
    assert [g.is_sparse for g in grads] == [True, False]
    # d(sum of outputs): 1 per present id and dim for the sum (3 ids x D=2), and 1 per row and
    # dim on the row the max picked (B=2 x D=2)
    assert float(grads[0].to_dense().sum()) == 6.0
    assert float(grads[1].sum()) == 4.0
