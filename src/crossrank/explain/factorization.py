"""Field-pair strength of a factorization machine term (``terms.fm_dim=K``), from its factors.

The term adds ``<v_f[a], v_g[b]>`` for every pair of fields f < g, where a and b are the ids
of the row. Over all id pairs of two fields the values form the matrix ``V_f V_g^T``
(``V_f``: field f's factor rows, (n_f, K)); its root-mean-square entry,
``||V_f V_g^T||_F / sqrt(n_f n_g)``, says how much the term moves a logit for that pair of
fields on a typical pair of ids. Computed through the K x K Gram matrices
(``||V_f V_g^T||_F^2 = <V_f^T V_f, V_g^T V_g>``), so a 100,000-row field costs one K x K
product, not an n_f x n_g matrix. Weights only: no data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from crossrank.explain.ranking import PairScore, format_pair_table, rank_pairs
from crossrank.layers.factorization import FactorizationMachine


def factorization_pair_strength(fm: FactorizationMachine) -> Tensor:
    """RMS of ``<v_f[a], v_g[b]>`` over all id pairs (a, b), for each field pair f < g.

    Multi-valued fields are left out: their factor is a pooled sum of rows, not one row.

    Shape:
        returns (F, F) float64, upper triangle filled (diagonal and below zero).

    Example:
        >>> fm = FactorizationMachine([2, 3], 4)
        >>> with torch.no_grad():
        ...     _ = fm.factors.table.weight.fill_(0.5)
        >>> factorization_pair_strength(fm)[0, 1].item()  # every <v, w> is 4 * 0.25
        1.0
    """
    if fm.factors.table is None:  # multi-valued fields only
        return torch.zeros(0, 0, dtype=torch.float64)
    table = fm.factors.table.weight.detach().to(torch.float64)  # (sum n_f, K)
    sizes = fm.factors.vocab_sizes
    grams, start = [], 0
    for n in sizes:
        block = table[start:start + n]  # (n_f, K)
        grams.append(block.T @ block)  # (K, K)
        start += n
    f = len(sizes)
    strength = torch.zeros(f, f, dtype=torch.float64)
    for i in range(f):
        for j in range(i + 1, f):
            squared = (grams[i] * grams[j]).sum().clamp_min(0.0)
            strength[i, j] = squared.sqrt() / (sizes[i] * sizes[j]) ** 0.5
    return strength


def factorization_pairs(fm: FactorizationMachine, *, top_k: int | None = None) -> list[PairScore]:
    """The field pairs of the term, strongest first (see :func:`factorization_pair_strength`)."""
    return rank_pairs(factorization_pair_strength(fm), fm.factors.field_names, top_k=top_k,
                      include_self=False)


def format_factorization_table(pairs: list[PairScore]) -> str:
    """A heading plus the ranked table (score: RMS pairwise value; share of the squared sum)."""
    return ("Factorization machine term, field pairs (RMS of <v_i, v_j> over all id pairs):\n"
            + format_pair_table(pairs))
