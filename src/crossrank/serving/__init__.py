"""Export and scoring of trained models; no training code, and no torch, on the scoring path.

* :mod:`crossrank.serving.export`: a model to ``model.onnx`` or ``model.pt2`` beside its
  encoder and ``serving.json`` (imports torch; import it by name).
* :class:`Scorer`: raw rows to scores with the saved encoder and ONNX Runtime.
* :mod:`crossrank.serving.server`: the HTTP service of ``crossrank serve``.
"""

from crossrank.serving.manifest import Manifest, read_manifest
from crossrank.serving.rows import BadRowsError
from crossrank.serving.scorer import Scorer

__all__ = ["BadRowsError", "Manifest", "Scorer", "read_manifest"]
