"""The synthetic click log ``crossrank train`` trains on when it is given no data."""

from __future__ import annotations

from pathlib import Path

from crossrank.data.synthetic import make_synthetic_clicks
from crossrank.data.writers import write_table

# The embedded default data: Criteo-shaped, 100 values per field and a small main effect of
# each planted field, so that the planted crosses are learnable in a few epochs from the
# default 50,000 rows. (At 1,000 Zipf values per field and pure XOR crosses, most values are
# too rare, and the start too flat, to learn the crosses from that many rows.)
SYNTHETIC_VOCAB = 100
SYNTHETIC_MAIN_WEIGHT = 0.5


def write_default_synthetic(path: str | Path, num_rows: int, *, seed: int = 0) -> None:
    """Write the synthetic click log ``crossrank train`` uses when given no data (Criteo TSV).

    All files written here come from one click model (one "world"), so files written with
    different seeds are train and test samples of the same task.
    """
    table = make_synthetic_clicks(num_rows, seed=seed, vocab_size=SYNTHETIC_VOCAB,
                                  main_weight=SYNTHETIC_MAIN_WEIGHT)
    write_table(table, path, fmt="criteo")


