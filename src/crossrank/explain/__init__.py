"""Model understanding: which feature crosses a cross network learned.

* ``field_pair_importance``: block Frobenius norms of each cross layer's weight by field
  (the DCN-V2 paper's Figure 6), ranked as unordered field pairs.
* ``plot_field_importance``: the heatmap PNG.
* ``extract_polynomial``: the exact polynomial of a small dense-only cross model.
* ``explain_model``: all of it written to a folder.

matplotlib is imported only when a heatmap is drawn.
"""

from crossrank.explain.importance import FieldImportance, block_sums, field_pair_importance
from crossrank.explain.plots import heatmap_size, plot_field_importance
from crossrank.explain.polynomial import Polynomial, extract_polynomial, polynomial_problem
from crossrank.explain.ranking import PairScore, format_pair_table, rank_pairs
from crossrank.explain.report import explain_model

__all__ = ["FieldImportance", "PairScore", "Polynomial", "block_sums", "explain_model",
           "extract_polynomial", "field_pair_importance", "format_pair_table", "heatmap_size",
           "plot_field_importance", "polynomial_problem", "rank_pairs"]
