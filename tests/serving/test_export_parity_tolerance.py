"""The export-time parity check: absolute for scores near 0, relative for a regression's
large values (a float32 score of 35 is only good to ~4e-6)."""

import pytest
import torch

from crossrank.models import FeatureSchema, build_model
from crossrank.serving.export import PARITY_ATOL, PARITY_RTOL, _check_parity, scoring_graph


def _large_regression_model():
    torch.manual_seed(0)
    model = build_model("linear", FeatureSchema(dense=("a",), categorical=("u",),
                                                vocab_sizes=(3,)), task="regression")
    with torch.no_grad():
        model.intercept.bias.fill_(5000.0)  # scores around 5,000, as prices might be
        model.first_order.dense_weight.fill_(100.0)
    return model.eval()


def test_float32_rounding_of_large_scores_passes_and_a_real_difference_does_not():
    model = _large_regression_model()
    graph, kinds = scoring_graph(model)

    def eager(inputs):
        with torch.no_grad():
            return graph(*inputs).numpy()

    # off by a few float32 steps of 5,000 (5e-4 each): beyond 1e-5 absolute, within relative
    _check_parity(lambda inputs: eager(inputs) * (1 + 4 * 2.0 ** -24), graph, kinds, model)
    off = PARITY_ATOL + PARITY_RTOL * 6000
    with pytest.raises(RuntimeError, match="differ from the eager model's at batch 1"):
        _check_parity(lambda inputs: eager(inputs) + off, graph, kinds, model)
