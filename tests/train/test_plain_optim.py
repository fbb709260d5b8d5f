"""The optimizers without torch's decorators (``crossrank.train.plain_optim``): every update is
bit-identical to torch's own class in float64 (weight decay, several groups, a parameter
without a gradient), their state_dicts load into each other, and a whole training run in a
fresh process never imports ``torch._dynamo`` (the 1.3-2 s they exist to save)."""

import subprocess
import sys
import textwrap

import pytest
import torch

from crossrank.train import plain_optim

CASES = [("Adam", {"lr": 0.01, "weight_decay": 1e-3}),
         ("Adam", {"lr": 0.05, "betas": (0.8, 0.95), "amsgrad": True}),
         ("Adagrad", {"lr": 0.1, "weight_decay": 1e-2}),
         ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}),
         ("SGD", {"lr": 0.1})]


def _params(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(5, 3, generator=g, dtype=torch.float64)),
            torch.nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64)),
            torch.nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))]


def _run(cls, options, steps=6, seed=0):
    params = _params(seed)
    opt = cls([{"params": params[:2]}, {"params": params[2:], "lr": 0.3}], **options)
    g = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        opt.zero_grad()
        for i, p in enumerate(params):
            if i == 2 and step % 3 == 1:
                continue  # a step without a gradient for this one
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
        opt.step()
    return params, opt


@pytest.mark.parametrize(("name", "options"), CASES)
def test_updates_are_bit_identical_to_torch(name, options):
    ours, opt = _run(getattr(plain_optim, name), options)
    theirs, ref = _run(getattr(torch.optim, name), options)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    assert type(opt).__mro__[1] is plain_optim.WithoutDynamoImport


@pytest.mark.parametrize(("name", "options"), CASES)
def test_state_dicts_load_both_ways(name, options):
    ours, opt = _run(getattr(plain_optim, name), options, steps=3)
    theirs, ref = _run(getattr(torch.optim, name), options, steps=3)
    # continue each from the other's state: the same next update as an uninterrupted run
    swapped_ours = getattr(plain_optim, name)([{"params": ours[:2]}, {"params": ours[2:],
                                                                      "lr": 0.3}], **options)
    swapped_ours.load_state_dict(ref.state_dict())
    swapped_theirs = getattr(torch.optim, name)([{"params": theirs[:2]}, {"params": theirs[2:],
                                                                          "lr": 0.3}], **options)
    swapped_theirs.load_state_dict(opt.state_dict())
    for params, o in ((ours, swapped_ours), (theirs, swapped_theirs)):
        for p in params:
            p.grad = torch.full_like(p, 0.5)
        o.step()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_a_differentiable_optimizer_is_refused():
    p = torch.nn.Parameter(torch.ones(2))
    opt = plain_optim.SGD([p], lr=0.1, differentiable=True)
    p.grad = torch.ones(2)
    with pytest.raises(ValueError, match="differentiable"):
        opt.step()


def test_a_training_run_never_imports_dynamo(tmp_path):
    """``crossrank train`` in a fresh process (dense parameters and sparse tables, Adam then
    Adagrad, resumed from its checkpoint so the optimizer state is saved and loaded) never
    imports torch._dynamo."""
    from crossrank.data import make_synthetic_clicks, write_table

    data = tmp_path / "train.csv"
    write_table(make_synthetic_clicks(600, seed=0), data, fmt="csv")
    code = textwrap.dedent(f"""
        import sys
        from crossrank.cli import main
        base = ["train", "--data", r"{data}", "--label", "label", "--batch-size", "128",
                "--model-option", "sparse_gradients=true", "--threads", "1"]
        for optimizer in ("adam", "adagrad"):
            out = r"{tmp_path}" + "/" + optimizer
            main(base + ["--optimizer", optimizer, "--out", out, "--epochs", "1",
                         "--no-refit"])
            main(["train", "--out", out, "--resume", "--epochs", "2"])
        print("dynamo imported:", "torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "dynamo imported: False" in out.stdout
