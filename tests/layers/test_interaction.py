"""DotInteraction, ProjectionInteraction, MLP and FieldEmbedding."""

import pytest
import torch

from crossrank.layers import MLP, DotInteraction, FieldEmbedding, ProjectionInteraction
from crossrank.ops import reference
from tolerances import assert_close


def test_dot_interaction_layout_by_hand():
    dense = torch.tensor([[1.0, 2.0]])
    sparse = torch.tensor([[[3.0, 0.0], [0.0, 4.0], [1.0, 1.0]]])
    out = DotInteraction()(dense, sparse)
    # dense, then <d,e1>, <d,e2>, <d,e3>, <e1,e2>, <e1,e3>, <e2,e3> (row-major upper triangle)
    assert out.tolist() == [[1.0, 2.0, 3.0, 8.0, 3.0, 0.0, 3.0, 4.0]]
    self_out = DotInteraction(self_interaction=True)(dense, sparse)
    # with the diagonal: <d,d>, <d,e1>, <d,e2>, <d,e3>, <e1,e1>, ...
    assert self_out.tolist() == [[1.0, 2.0, 5.0, 3.0, 8.0, 3.0, 9.0, 0.0, 3.0, 16.0, 4.0, 2.0]]


@pytest.mark.parametrize("f, d", [(1, 3), (4, 8), (26, 16)])
def test_dot_interaction_width_and_values(f, d):
    dense = torch.randn(3, d, dtype=torch.float64)
    sparse = torch.randn(3, f, d, dtype=torch.float64)
    out = DotInteraction()(dense, sparse)
    assert out.shape == (3, d + (f + 1) * f // 2) == (3, DotInteraction.output_dim(f, d))
    t = torch.cat([dense.unsqueeze(1), sparse], 1)
    col = d
    for i in range(f + 1):
        for j in range(i + 1, f + 1):
            assert_close(out[:, col], (t[:, i] * t[:, j]).sum(-1))
            col += 1
    if f * d <= 32:  # finite differences over every input element: keep it small
        assert torch.autograd.gradcheck(
            lambda a, b: DotInteraction()(a, b),
            (dense.clone().requires_grad_(), sparse.clone().requires_grad_()))


def test_dot_interaction_bad_inputs():
    with pytest.raises(ValueError, match="sparse"):
        DotInteraction()(torch.randn(2, 4), torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="batch"):
        DotInteraction()(torch.randn(2, 4), torch.randn(3, 3, 4))


def test_projection_interaction_shapes_and_values():
    p = ProjectionInteraction(3, 4, branch1_sizes=[16, 8], branch2_sizes=[12]).double()
    dense, sparse = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 3, 4, dtype=torch.float64)
    out = p(dense, sparse)
    assert out.shape == (2, 4 + 2 * 3) and p.output_dim == 10
    flat = torch.cat([dense, sparse.reshape(2, -1)], 1)
    y = p.branch1(flat).reshape(2, 2, 4)
    z = p.branch2(flat).reshape(2, 4, 3)
    expected = torch.stack([y[b] @ z[b] for b in range(2)]).reshape(2, -1)
    assert_close(out[:, 4:], expected)
    assert_close(out[:, :4], dense)
    assert p(dense[:1], sparse[:1]).shape == (1, 10)


def test_projection_interaction_error_names_branch():
    with pytest.raises(ValueError, match="branch2_sizes must end in a multiple of embedding_dim=4"):
        ProjectionInteraction(3, 4, branch1_sizes=[8], branch2_sizes=[10])


def test_mlp():
    mlp = MLP(5, [7, 3], activate_last=False)
    linears = [m for m in mlp.layers if isinstance(m, torch.nn.Linear)]
    x = torch.randn(4, 5)
    expected = linears[1](torch.relu(linears[0](x)))
    torch.testing.assert_close(mlp(x), expected)
    assert MLP(5, [3])(torch.randn(1, 5)).min() >= 0  # activate_last
    with pytest.raises(ValueError, match="layer_sizes"):
        MLP(5, [3, 0])
    with pytest.raises(ValueError, match="dropout"):
        MLP(5, [3], dropout=1.5)


def test_field_embedding_offsets_and_errors():
    emb = FieldEmbedding([3, 5], 2, field_names=["user", "item"])
    ids = torch.tensor([[2, 0], [0, 4]])
    out = emb(ids)
    w = emb.table.weight
    torch.testing.assert_close(out[0, 0], w[2])
    torch.testing.assert_close(out[0, 1], w[3 + 0])
    torch.testing.assert_close(out[1, 1], w[3 + 4])
    with pytest.raises(ValueError, match=r"sparse id 3 out of range \[0, 3\) for user"):
        emb(torch.tensor([[3, 0]]))
    with pytest.raises(ValueError, match="item"):
        emb(torch.tensor([[0, -1]]))
    with pytest.raises(TypeError, match="int64"):
        emb(torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        emb(torch.tensor([0, 1]))


def test_field_embedding_sparse_grad_and_row_l2():
    emb = FieldEmbedding([4, 4], 3, sparse=True, l2=0.5)
    ids = torch.tensor([[1, 2], [1, 0]])
    out = emb(ids)
    out.sum().backward()
    grad = emb.table.weight.grad
    assert grad.is_sparse
    dense_grad = grad.to_dense()
    touched = {1, 4 + 2, 4 + 0}
    for row in range(8):
        assert bool(dense_grad[row].abs().sum() > 0) == (row in touched)
    # d/de [sum(e) + l2 * sum(e^2) / B] = 1 + 2 * l2 * e / B, summed over the two uses of row 1.
    w = emb.table.weight.detach()
    torch.testing.assert_close(dense_grad[1], 2 * (1 + 2 * 0.5 * w[1] / 2))


def test_reference_projection_product():
    y, z = torch.randn(2, 6), torch.randn(2, 9)
    out = reference.projection_product(y, z, 3)
    torch.testing.assert_close(out[1], (y[1].reshape(2, 3) @ z[1].reshape(3, 3)).reshape(-1))
