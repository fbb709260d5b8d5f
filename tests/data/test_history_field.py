"""A pooled history field learns what the generator planted in it.

The generator (:mod:`crossrank.data.synthetic_history`) makes the click depend only on whether
the target's category is in the history, with categories uniform everywhere: without the
history no model can beat AUC 0.5, and with it none can beat the hit indicator's AUC
(``HistorySpec.hit_auc()``, 0.753 here). The bound asserted is half that planted margin.
"""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from crossrank.data import FeatureEncoder
from crossrank.data.synthetic_history import HistorySpec, make_history_clicks
from crossrank.models import DCN, CrossConfig, DCNConfig, FeatureSchema
from crossrank.train.inmemory import InMemoryFitConfig, fit_tensors

SPEC = HistorySpec(items_per_category=10)


def _auc(with_history: bool, seed: int) -> float:
    schema = SPEC.table_schema()
    if not with_history:
        schema = dataclasses.replace(schema, multi_valued=())
    train = make_history_clicks(10_000, seed=seed, spec=SPEC)
    test = make_history_clicks(5_000, seed=seed + 100, spec=SPEC)
    enc = FeatureEncoder(schema).fit([train])
    model_schema = FeatureSchema(
        dense=enc.dense_names, categorical=enc.sparse_names, vocab_sizes=enc.vocab_sizes,
        embedding_dim=8, multi_valued=schema.multi_valued_names,
        multi_valued_sizes=enc.lists.sizes, multi_valued_widths=enc.lists.widths,
        pooling=tuple(m.pooling for m in schema.multi_valued))
    torch.manual_seed(seed)
    model = DCN(model_schema, DCNConfig(cross=CrossConfig(num_layers=2), deep_layers=(32,)))
    a = enc.transform(train)
    fit_tensors(model, torch.from_numpy(a.dense), torch.from_numpy(a.label),
                sparse=torch.from_numpy(a.sparse),
                config=InMemoryFitConfig(lr=1e-2, epochs=3, batch_size=256, seed=seed))
    b = enc.transform(test)
    with torch.no_grad():
        scores = model(torch.from_numpy(b.dense), torch.from_numpy(b.sparse)).numpy()
    return float(roc_auc_score(b.label, scores))


def test_the_planted_effect_is_what_the_spec_says():
    t = make_history_clicks(200_000, seed=0, spec=SPEC)
    history = t.column("history").to_pylist()
    target = np.array(t.column("target").to_pylist(), dtype=int)
    per = SPEC.items_per_category
    hit = np.array([str(c) in {str(int(i) // per) for i in h.split("|") if i}
                    for c, h in zip(target // per, history)])
    label = t.column("label").to_numpy()
    assert abs(hit.mean() - SPEC.hit_rate) < 0.005
    assert abs(label[hit].mean() - SPEC.p_hit) < 0.01
    assert abs(label[~hit].mean() - SPEC.p_miss) < 0.01
    assert abs(roc_auc_score(label, hit) - SPEC.hit_auc()) < 0.01


@pytest.mark.parametrize("seed", [0])
def test_the_pooled_history_beats_the_same_model_without_it(seed):
    # seeds 0-2 gave 0.694/0.501, 0.684/0.508, 0.701/0.503 (busy 2-core machine, once)
    margin = SPEC.hit_auc() - 0.5  # planted: the best with history minus the best without
    with_history, without = _auc(True, seed), _auc(False, seed)
    assert without < 0.5 + margin / 4
    assert with_history - without > margin / 2, (with_history, without, margin)
