"""FactorizationMachine against its definition (float64), its L2, and every model's terms.fm_dim."""

import pytest
import torch

from crossrank.layers import FactorizationMachine
from crossrank.models import FeatureSchema, build_model
from crossrank.ops.reference import factorization_machine
from tolerances import assert_close

VOCAB = (7, 11, 3, 5)


def _ids(batch, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, v, (batch,), generator=g) for v in VOCAB], dim=1)


@pytest.mark.parametrize("batch", [1, 2, 33])
def test_pairwise_term_equals_the_sum_over_field_pairs(batch):
    torch.manual_seed(batch)
    fm = FactorizationMachine(VOCAB, 6, init_scale=1.0).double()
    ids = _ids(batch, seed=batch)
    expected = factorization_machine(fm.factors(ids))  # the explicit loop over pairs
    assert expected.abs().min() > 0  # random factors: a wrong pair set would show
    assert_close(fm(None, ids), expected)


def test_gradient_equals_the_reference_gradient_plus_the_per_occurrence_l2():
    torch.manual_seed(1)
    l2 = 0.3
    fm = FactorizationMachine(VOCAB, 4, l2=l2, init_scale=1.0).double()
    ids = _ids(5, seed=2)
    fm(None, ids).sum().backward()
    ours = fm.factors.table.weight.grad.clone()

    table = fm.factors.table.weight.detach().clone().requires_grad_(True)
    looked_up = table[ids + fm.factors.offsets]  # (B, F, K)
    # The L2 is a mean over the batch of the looked-up rows' squared norms (per occurrence).
    loss = factorization_machine(looked_up).sum() + l2 * looked_up.square().sum() / ids.shape[0]
    loss.backward()
    assert_close(ours, table.grad)


def test_needs_two_fields_and_a_non_negative_dim():
    with pytest.raises(ValueError, match="at least 2 categorical fields"):
        FactorizationMachine([5], 4)
    schema = FeatureSchema(dense=("x",), categorical=("u", "m"), vocab_sizes=(5, 7),
                           embedding_dim=4)
    for bad in (-1, True, 2.5):
        with pytest.raises(ValueError, match="terms.fm_dim.? must be an integer"):
            build_model("dcn", schema, {"terms": {"fm_dim": bad}})


@pytest.mark.parametrize("name, options", [
    ("dcn", {"deep_layers": [8], "cross": {"rank": 2}}),
    ("dlrm", {"bottom_layers": [4], "top_layers": [8], "interaction": "dcn"}),
    ("dnn", {"deep_layers": [8]}),
])
def test_any_model_logit_is_its_logit_plus_the_pairwise_term(name, options):
    schema = FeatureSchema(dense=("x",), categorical=("u", "m", "g"), vocab_sizes=(5, 7, 2),
                           embedding_dim=4)
    torch.manual_seed(3)
    model = build_model(name, schema, {**options, "terms": {"fm_dim": 3}},
                        task="regression").double().eval()
    with torch.no_grad():
        model.fm.factors.table.weight.normal_()
    dense = torch.rand(4, 1, dtype=torch.float64)
    ids = torch.tensor([[0, 1, 0], [4, 6, 1], [2, 2, 0], [0, 1, 0]])
    with_fm = model(dense, ids)
    fm_term = factorization_machine(model.fm.factors(ids))
    assert fm_term.abs().min() > 0
    with torch.no_grad():
        model.fm.factors.table.weight.zero_()  # the term is then 0
    assert_close(with_fm, model(dense, ids) + fm_term)


def test_sparse_factors_train_with_sparse_adam():
    from crossrank.train.optim import build_optimizer

    schema = FeatureSchema(dense=(), categorical=("u", "m"), vocab_sizes=(5, 7), embedding_dim=4)
    torch.manual_seed(4)
    model = build_model("dcn", schema, {"deep_layers": [8], "terms": {"fm_dim": 3, "fm_l2": 0.1},
                                        "sparse_gradients": True}, task="regression")
    opt = build_optimizer(model, "adam", 0.01)
    before = model.fm.factors.table.weight.detach().clone()
    sparse = torch.tensor([[1, 2], [3, 2]])
    (model(None, sparse) - 4.0).square().mean().backward()
    assert model.fm.factors.table.weight.grad.is_sparse
    opt.step()
    changed = (model.fm.factors.table.weight.detach() != before).any(dim=1)
    offsets = model.fm.factors.offsets
    touched = {1, 3, 5 + 2}  # u=1, u=3, m=2 (the m block starts at row 5)
    assert changed.nonzero().flatten().tolist() == sorted(touched)
    assert offsets.tolist() == [0, 5]


def test_pair_strength_is_the_rms_of_all_pairwise_values():
    from crossrank.explain.factorization import factorization_pair_strength

    torch.manual_seed(5)
    fm = FactorizationMachine(VOCAB, 3, init_scale=1.0)
    strength = factorization_pair_strength(fm)
    table = fm.factors.table.weight.detach().double()
    blocks = torch.split(table, list(VOCAB))
    for i in range(len(VOCAB)):
        for j in range(len(VOCAB)):
            if i < j:  # every <v_i[a], v_j[b]> over all id pairs, explicitly
                expected = (blocks[i] @ blocks[j].T).square().mean().sqrt()
                assert_close(strength[i, j], expected)
            else:
                assert strength[i, j] == 0


def test_explain_ranks_the_planted_factorization_pair_first(tmp_path):
    from crossrank.explain import explain_model

    schema = FeatureSchema(dense=(), categorical=("user", "movie", "gender"),
                           vocab_sizes=(6, 8, 2), embedding_dim=4)
    torch.manual_seed(6)
    model = build_model("dcn", schema, {"deep_layers": [8], "terms.fm_dim": 2},
                        task="regression")
    with torch.no_grad():  # only user x movie carries weight: the gender factors are tiny
        model.fm.factors.table.weight[:14].normal_()
        model.fm.factors.table.weight[14:].fill_(1e-3)
    report = explain_model(model, out_dir=tmp_path, top_k=3)
    first = report["factorization_pairs"][0]
    assert (first["field_i"], first["field_j"]) == ("user", "movie")
    assert first["share"] > 0.99
    assert "Factorization machine term" in (tmp_path / "importance.txt").read_text()
    assert "factorization_pairs" in (tmp_path / "importance.json").read_text()
