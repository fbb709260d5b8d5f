"""`compile = true`: the training step runs the torch.compile'd model and updates the same
parameters as the eager step (to float32 rounding: the compiler fuses and reorders)."""

import pytest
import torch

from crossrank.models import FeatureSchema, build_model
from crossrank.train.config import TrainConfig
from crossrank.train.step import TrainStep
from tolerances import TOLERANCES


@pytest.mark.slow
def test_compiled_step_updates_like_the_eager_step():
    schema = FeatureSchema(dense=("a", "b", "c"), categorical=("x", "y"), vocab_sizes=(20, 30),
                           embedding_dim=4)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(64, 3, generator=g), torch.randint(0, 20, (64, 2), generator=g),
                torch.randint(0, 2, (64,), generator=g).float()) for _ in range(3)]
    states, losses = [], []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = build_model("dlrm", schema, {"bottom_layers": [16, 4], "top_layers": [16],
                                             "interaction": "dcn", "cross": {"rank": 4}},
                            task="binary")
        step = TrainStep(model, TrainConfig(optimizer="adagrad", lr=0.05, compile=compiled,
                                            threads=1))
        assert (step.net is model) != compiled
        losses.append([float(step(*b, step=i, total_steps=3)) for i, b in enumerate(batches)])
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    rtol, atol = TOLERANCES[torch.float32]
    assert losses[1] == pytest.approx(losses[0], rel=rtol, abs=atol)
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=rtol, atol=atol, msg=key)
