"""Every registered model and variant of the model contract tests exports, to ONNX and to a
``torch.export`` program, with the eager model's scores (to PARITY_ATOL in float32) at batch
1 and 4,096; a model newly added to the registry is covered through the contract's VARIANTS.

The variants are exported together, as the outputs of one module (one export of each kind
instead of one per variant keeps this fast), and checked one by one."""

import importlib.util
import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from crossrank.models import build_model
from crossrank.serving.export import PARITY_ATOL, sample_inputs, scoring_graph

_CONTRACT = Path(__file__).resolve().parents[1] / "models" / "test_contract.py"
_spec = importlib.util.spec_from_file_location("model_contract_variants", _CONTRACT)
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)
VARIANTS = contract.VARIANTS
# torch 2.13's own pytree code warns about its own deprecated LeafSpec check
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


class _Every(nn.Module):
    def __init__(self, graphs):
        super().__init__()
        self.graphs = nn.ModuleList(graphs)

    def forward(self, dense, ids):
        return tuple(g(dense, ids) for g in self.graphs)


@pytest.fixture(scope="module")
def exported():
    """(eager models, ONNX Runtime session, loaded ExportedProgram) of every variant."""
    models, graphs = [], []
    for i, (name, config, task) in enumerate(VARIANTS):
        torch.manual_seed(i)
        model = build_model(name, contract.SCHEMA, config, task=task)
        with torch.no_grad():  # weights away from init, so scores spread over the link's range
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        graph, kinds = scoring_graph(model)  # what crossrank export exports: reference ops
        assert kinds == ("dense", "ids")
        models.append(model.eval())
        graphs.append(graph)
    every = _Every(graphs).eval()
    example = sample_inputs(models[0], ("dense", "ids"), 8)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(every, example, dynamic_shapes=({0: batch}, {0: batch}))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer).module()
    onnx = torch.onnx.export(program, example, dynamo=True, input_names=["dense", "ids"],
                             verbose=False)
    session = ort.InferenceSession(onnx.model_proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    outputs = {}
    for rows in (1, 4096):
        dense, ids = sample_inputs(models[0], ("dense", "ids"), rows, seed=rows)
        outputs[rows] = (dense, ids, session.run(None, {"dense": dense.numpy(),
                                                        "ids": ids.numpy()}),
                         [t.detach().numpy() for t in loaded(dense, ids)])
    return models, outputs


def _ids(variant):
    name, config, task = variant
    return f"{name}-{task}-" + ",".join(f"{k}={v}" for k, v in sorted(config.items()))


@pytest.mark.parametrize("index", range(len(VARIANTS)), ids=[_ids(v) for v in VARIANTS])
def test_every_variant_exports_to_onnx_and_pt2_with_the_eager_scores(exported, index):
    models, outputs = exported
    model = models[index]
    for rows, (dense, ids, onnx_scores, pt2_scores) in outputs.items():
        with torch.no_grad():
            logits = model(dense, ids).double()
        # the link in float64: sigmoid for binary, identity for regression
        expected = (torch.sigmoid(logits) if model.task == "binary" else logits).numpy()
        for got in (onnx_scores[index], pt2_scores[index]):
            assert got.shape == (rows,) and got.dtype == np.float32
            np.testing.assert_allclose(got, expected, rtol=0, atol=PARITY_ATOL)
    assert expected.std() > 1e-3  # the comparison is not between constants
