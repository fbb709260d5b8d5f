"""The same bits on any number of threads: MKL's strict reproducibility mode.

The thread governor (:mod:`crossrank.train.threads`) changes torch's thread count while a
model trains, and a run must give the same model whatever it chose: every kernel has to
give the same bits on one thread and on two. torch's CPU matrix products are MKL's
``sgemm``, which on some CPUs (an Intel one with AVX-512, 2026-12-02) splits the shared
dimension of a weight gradient (the batch) between the threads and adds the parts in
another order: 2.4e-4 apart on a (2048, 48) x (2048, 128) product. MKL's strict
conditional-numerical-reproducibility mode (``MKL_CBWR=AUTO,STRICT``) keeps ``?gemm``
bitwise reproducible when the thread count changes (oneMKL Developer Guide, "Reproducibility
Conditions"). Matrix-vector products are not covered, so crossrank's layers write them as
products with an (N, 1) matrix.

MKL reads the variable when it first runs, so it is set when crossrank is imported, before
the process's first matrix product in the usual case; a value the user set is kept.
"""

from __future__ import annotations

import os

__all__ = ["MKL_VARIABLE", "STRICT"]

MKL_VARIABLE = "MKL_CBWR"
STRICT = "AUTO,STRICT"

os.environ.setdefault(MKL_VARIABLE, STRICT)
