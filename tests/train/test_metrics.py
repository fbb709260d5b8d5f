"""The memory-lean AUC and log-loss against scikit-learn, the reference."""

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from crossrank.train.metrics import binary_auc, binary_logloss
from tolerances import TOLERANCES


def test_lean_metrics_equal_scikit_learn():
    rtol, atol = TOLERANCES[torch.float64]
    rng = np.random.default_rng(0)
    for n in (2, 7, 1000, 200_003):  # the last one spans several chunks
        y = (rng.random(n) < 0.3).astype(np.float64)
        y[:2] = [0, 1]
        for s in (rng.random(n), np.round(rng.random(n), 1),  # many ties
                  np.where(y > 0, 1 - 1e-17, 0.0)):  # clipped at both ends
            assert binary_auc(s, y) == pytest.approx(roc_auc_score(y, s), rel=rtol, abs=atol)
            expected = log_loss(y, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1])
            assert binary_logloss(s, y) == pytest.approx(expected, rel=rtol, abs=atol)
    with pytest.raises(ValueError, match="both classes"):
        binary_auc(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ValueError, match="finite"):
        binary_auc(np.array([0.1, np.nan]), np.array([0, 1]))
