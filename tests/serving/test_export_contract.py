"""Every registered model and variant of the model contract tests exports, to ONNX and to a
``torch.export`` program, with the eager model's scores (to PARITY_ATOL in float32) at batch
1 and 4,096; a model newly added to the registry is covered through the contract's VARIANTS.
Each variant is exported twice: with one-id categorical fields only, and with multi-valued
fields too (sum, mean and max pooling; padded ids with rows of every length 0..width, row 0
all padding).

The variants are exported in groups of GROUP, each group as the outputs of one module, and
checked one by one: one export per variant pays the exporter's fixed cost every time, and
one export of them all costs more than the groups' (ONNX export time grows faster than the
graph: on 2 cores, 1 variant 8 s, 6 21 s, 12 65 s, all 22 190 s)."""

import importlib.util
import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from crossrank.models import FeatureSchema, build_model
from crossrank.serving.export import PARITY_ATOL, PARITY_RTOL, sample_inputs, scoring_graph

_CONTRACT = Path(__file__).resolve().parents[1] / "models" / "test_contract.py"
_spec = importlib.util.spec_from_file_location("model_contract_variants", _CONTRACT)
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)
VARIANTS = contract.VARIANTS
# the contract's multi-valued schema with a mean-pooled field added: every pooling
_M = contract.MULTI
MULTI = FeatureSchema(dense=_M.dense, categorical=_M.categorical, vocab_sizes=_M.vocab_sizes,
                      embedding_dim=_M.embedding_dim,
                      multi_valued=_M.multi_valued + ("tags",),
                      multi_valued_sizes=_M.multi_valued_sizes + (5,),
                      multi_valued_widths=_M.multi_valued_widths + (6,),
                      pooling=_M.pooling + ("mean",))
SCHEMAS = {"categorical": contract.SCHEMA, "multi-valued": MULTI}
# torch 2.13's own pytree code warns about its own deprecated LeafSpec check
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


class _Every(nn.Module):
    """Every graph of the categorical schema on ``ids``, then every one of the multi-valued
    schema on ``padded``."""

    def __init__(self, graphs, padded_graphs):
        super().__init__()
        self.graphs = nn.ModuleList(graphs)
        self.padded_graphs = nn.ModuleList(padded_graphs)

    def forward(self, dense, ids, padded):
        return tuple(g(dense, ids) for g in self.graphs) + \
            tuple(g(dense, padded) for g in self.padded_graphs)


GROUP = 6


@pytest.fixture(scope="module")
def exported():
    """The exports of variant group g (variants g * GROUP ...), made once: see _export."""
    groups: dict[int, tuple] = {}

    def of_group(group: int) -> tuple:
        if group not in groups:
            groups[group] = _export(range(group * GROUP, min((group + 1) * GROUP, len(VARIANTS))))
        return groups[group]

    return of_group


def _export(indices: range) -> tuple:
    """(eager models, scores of the ONNX Runtime session and of the loaded ExportedProgram at
    1 and 4,096 rows) of the variants ``indices``, exported as the outputs of one module."""
    models, graphs = {}, {}
    for schema_name, schema in SCHEMAS.items():
        models[schema_name], graphs[schema_name] = [], []
        for i in indices:
            name, config, task = VARIANTS[i]
            torch.manual_seed(i)
            model = build_model(name, schema, config, task=task)
            with torch.no_grad():  # weights away from init: scores spread over the link's range
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.3)
            graph, kinds = scoring_graph(model)  # what crossrank export exports: reference ops
            assert kinds == ("dense", "padded_ids" if schema.multi_valued else "ids")
            models[schema_name].append(model.eval())
            graphs[schema_name].append(graph)
    every = _Every(graphs["categorical"], graphs["multi-valued"]).eval()
    names = ["dense", "ids", "padded"]

    def inputs(rows, seed=0):
        dense, ids = sample_inputs(models["categorical"][0], ("dense", "ids"), rows, seed=seed)
        _, padded = sample_inputs(models["multi-valued"][0], ("dense", "padded_ids"), rows,
                                  seed=seed)
        return dense, ids, padded

    example = inputs(8)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(every, example, dynamic_shapes=({0: batch},) * 3)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer).module()
    onnx = torch.onnx.export(program, example, dynamo=True, input_names=names, verbose=False)
    session = ort.InferenceSession(onnx.model_proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    outputs = {}
    for rows in (1, 4096):
        given = inputs(rows, seed=rows)
        onnx_scores = session.run(None, {n: t.numpy() for n, t in zip(names, given)})
        pt2_scores = [t.detach().numpy() for t in loaded(*given)]
        k = len(indices)  # the categorical graphs' outputs, then the multi-valued ones'
        outputs[rows] = {"categorical": (given[0], given[1], onnx_scores[:k], pt2_scores[:k]),
                         "multi-valued": (given[0], given[2], onnx_scores[k:], pt2_scores[k:])}
    return models, outputs


def _ids(variant):
    name, config, task = variant
    return f"{name}-{task}-" + ",".join(f"{k}={v}" for k, v in sorted(config.items()))


@pytest.mark.parametrize("schema", list(SCHEMAS))
@pytest.mark.parametrize("index", range(len(VARIANTS)), ids=[_ids(v) for v in VARIANTS])
def test_every_variant_exports_to_onnx_and_pt2_with_the_eager_scores(exported, index, schema):
    models, outputs = exported(index // GROUP)
    index %= GROUP  # its place in its group
    model = models[schema][index]
    for rows, by_schema in outputs.items():
        dense, ids, onnx_scores, pt2_scores = by_schema[schema]
        if schema == "multi-valued":  # every length 0..width of every field, row 0 empty
            assert (ids[0, 2:] == -1).all() and (ids[:, 2:] == -1).any()
        with torch.no_grad():
            logits = model(dense, ids).double()
        # the link in float64: sigmoid for binary, identity for regression
        expected = (torch.sigmoid(logits) if model.task == "binary" else logits).numpy()
        for got in (onnx_scores[index], pt2_scores[index]):
            assert got.shape == (rows,) and got.dtype == np.float32
            np.testing.assert_allclose(got, expected, rtol=PARITY_RTOL, atol=PARITY_ATOL)
    assert expected.std() > 1e-3  # the comparison is not between constants
