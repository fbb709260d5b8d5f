"""Typed, frozen model configs: every option's default, help and choices, declared once.

Each field is declared with :func:`crossrank.options.option`, so the command line, the config
file and ``model.json`` are generated from these classes (``cross.rank``, ``terms.fm_dim``).
Unknown keys are errors, never silently ignored. The task (binary or regression) is not a model
option: it is set once, by the schema's task, and passed to the model as ``task=``.

Sections shared by every family:

* :class:`CrossConfig`: the cross network (DCN's, and DLRM's ``interaction="dcn"``).
* :class:`LogitTerms`: additive terms any model can add to its logit (first-order, FM).

Example:
    >>> from_dict(DCNConfig, {"cross": {"rank": 8}, "deep_layers": [64]}).cross.rank
    8
    >>> to_dict(DLRMConfig())["terms"]["fm_dim"]
    0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from crossrank.errors import ConfigError
from crossrank.layers.cross import CROSS_KINDS
from crossrank.ops.activations import ACTIVATIONS
from crossrank.ops.dispatch import BACKENDS
from crossrank.options import from_dict, option, to_dict

__all__ = ["CrossConfig", "DCNConfig", "DLRMConfig", "DNNConfig", "LinearConfig", "LogitTerms",
           "MultiTaskConfig", "from_dict", "to_dict"]

STRUCTURES = ("stacked", "parallel", "cross_only")
INTERACTIONS = ("dot", "dcn", "projection")
NORMS = (None, "layer", "batch")
MULTITASK_ARCHS = ("shared_bottom", "mmoe")
# The factorization machine term of DCN and DNN by default (terms.fm_dim none), chosen over
# five data sets (benchmarks/defaults_study.py, README Defaults); DLRM keeps none.
FM_DIM_DEFAULT = 32
FM_L2_DEFAULT = 0.05


def _check_choices(config: Any, section: str) -> None:
    """Values outside a field's declared choices, for configs built directly (not from_dict)."""
    for f in dataclasses.fields(config):
        choices = f.metadata.get("choices")
        value = getattr(config, f.name)
        if choices is not None and value not in choices:
            raise ConfigError(f"{section}{f.name} must be one of {list(choices)}, got {value!r}")


def _check_non_negative(config: Any, section: str, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ConfigError(f"{section}{name} must be a number >= 0, got {value!r}")


def _is_count(value: Any, minimum: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= minimum


@dataclass(frozen=True)
class CrossConfig:
    """The cross network: DCN-V2 full or low rank, DCN-Mix, or DCN v1 (``kind="vector"``).

    Example:
        >>> CrossConfig(rank=32, num_experts=4).num_layers
        3
        >>> CrossConfig(num_experts=2)
        Traceback (most recent call last):
        ...
        crossrank.errors.ConfigError: cross.num_experts=2 (DCN-Mix) needs a low cross.rank, got None
    """

    num_layers: int = option(3, help="cross layers L, each with its own weights")
    kind: str = option("matrix", help="matrix: DCN-V2, x0 * (W x + b) + x; vector: DCN v1, "
                       "x0 * (w . x) + b + x", choices=CROSS_KINDS)
    rank: int | None = option(None, help="low rank r of W = U V (none: full-rank W)")
    num_experts: int = option(1, help="low-rank experts K mixed by a gate (K > 1: DCN-Mix, "
                              "needs rank)")
    diag_scale: float = option(0.0, help="added to W's diagonal (W + diag_scale I), >= 0")
    activation: str | None = option(None, help="activation of W x + b (the experts' g for "
                                    "DCN-Mix); none: linear",
                                    choices=(None, *sorted(ACTIVATIONS)))
    use_bias: bool = option(True, help="learn a bias b per cross layer")
    l2: float = option(0.0, help="L2 penalty on the cross kernels (W, U, V, C, gate)")
    backend: str = option("auto", help="auto: fused Triton kernel on CUDA where supported; "
                          "reference: pure PyTorch; triton: always the kernel",
                          choices=BACKENDS)

    def __post_init__(self) -> None:
        _check_choices(self, "cross.")
        _check_non_negative(self, "cross.", "diag_scale", "l2")
        if not _is_count(self.num_layers, 1):
            raise ConfigError(f"cross.num_layers must be an integer >= 1, got {self.num_layers!r}")
        if self.rank is not None and not _is_count(self.rank, 1):
            raise ConfigError(f"cross.rank must be an integer >= 1 (or none for full rank), "
                              f"got {self.rank!r}")
        if not _is_count(self.num_experts, 1):
            raise ConfigError(f"cross.num_experts must be an integer >= 1, "
                              f"got {self.num_experts!r}")
        if self.num_experts > 1 and self.rank is None:
            raise ConfigError(f"cross.num_experts={self.num_experts} (DCN-Mix) needs a low "
                              "cross.rank, got None")
        if self.kind == "vector" and (self.rank is not None or self.num_experts > 1
                                      or self.diag_scale or self.activation is not None):
            raise ConfigError("cross.kind='vector' (DCN v1) takes no rank, num_experts, "
                              f"diag_scale or activation; got rank={self.rank!r}, "
                              f"num_experts={self.num_experts}, diag_scale={self.diag_scale!r}, "
                              f"activation={self.activation!r}")


@dataclass(frozen=True)
class LogitTerms:
    """Additive terms summed into any model's logit, each with its own weights and L2.

    ``first_order``: the linear ("wide") term ``w_d . dense + sum_f w_f[id_f]``
    (:class:`~crossrank.layers.FirstOrder`). ``fm_dim`` K > 0: a factorization machine's
    pairwise term ``sum_{i<j} <v_i, v_j>`` with its own K-long factors
    (:class:`~crossrank.layers.FactorizationMachine`; needs two or more categorical fields).
    ``fm_dim`` None (DCN's and DNN's default) decides by the model: K = 32 for a model with
    one label and two or more categorical fields, none otherwise (:meth:`resolved`; a model
    keeps the resolved value in its config, so a saved model never depends on this rule).

    Example:
        >>> LogitTerms(fm_dim=-1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        crossrank.errors.ConfigError: terms.fm_dim must be an integer >= 0 (0: no ...), got -1
        >>> LogitTerms().resolved(num_fields=2, num_tasks=1).fm_dim
        32
        >>> LogitTerms().resolved(num_fields=2, num_tasks=2).fm_dim
        0
    """

    first_order: bool = option(False, help="add the linear (wide) term w_d . dense + "
                               "sum_f w_f[id_f] to the logit")
    first_order_l2: float = option(0.0, help="L2 penalty on the first-order weights")
    fm_dim: int | None = option(None, help="factor length K of a factorization machine's "
                                "pairwise term (0: none; needs 2+ categorical fields; none: "
                                f"{FM_DIM_DEFAULT} for a model with one label and 2+ "
                                "categorical fields, else 0)")
    fm_l2: float = option(FM_L2_DEFAULT, help="per-occurrence L2 penalty on the factorization "
                          "machine's looked-up factors")

    def __post_init__(self) -> None:
        if not isinstance(self.first_order, bool):
            raise ConfigError(f"terms.first_order must be true or false, got {self.first_order!r}")
        if self.fm_dim is not None and not _is_count(self.fm_dim, 0):
            raise ConfigError(f"terms.fm_dim must be an integer >= 0 (0: no factorization "
                              f"machine; none: the default's rule), got {self.fm_dim!r}")
        _check_non_negative(self, "terms.", "first_order_l2", "fm_l2")

    def resolved(self, *, num_fields: int, num_tasks: int,
                 fm_dim: int = FM_DIM_DEFAULT) -> LogitTerms:
        """These terms with ``fm_dim`` None decided for a model with ``num_fields``
        categorical fields (multi-valued ones count) and ``num_tasks`` labels: ``fm_dim``
        (the family's size, 0 for none) where it applies; a multi-task model takes no logit
        term, and a factorization machine needs two fields."""
        if self.fm_dim is not None:
            return self
        on = num_tasks == 1 and num_fields >= 2
        return dataclasses.replace(self, fm_dim=fm_dim if on else 0)


def resolve_terms(config: Any, *, num_fields: int, num_tasks: int,
                  fm_dim: int = FM_DIM_DEFAULT) -> Any:
    """A family config with its ``terms`` resolved (:meth:`LogitTerms.resolved`)."""
    terms = config.terms.resolved(num_fields=num_fields, num_tasks=num_tasks, fm_dim=fm_dim)
    return config if terms is config.terms else dataclasses.replace(config, terms=terms)


@dataclass(frozen=True)
class MultiTaskConfig:
    """How a model with several labels (``--label click,conversion``) shares its body; read
    only then (:class:`~crossrank.models.multitask.MultiTaskModel`).

    Example:
        >>> MultiTaskConfig(arch="mmoe", num_experts=0)
        Traceback (most recent call last):
        ...
        crossrank.errors.ConfigError: multitask.num_experts must be an integer >= 1, got 0
    """

    arch: str = option("shared_bottom", help="multi-task models (several labels): "
                       "shared_bottom: one body, a tower per task; mmoe: num_experts bodies "
                       "mixed by a softmax gate per task over the input embedding",
                       choices=MULTITASK_ARCHS)
    num_experts: int = option(4, help="mmoe: expert bodies K (>= 1)")
    tower_layers: tuple[int, ...] = option((64,), help="hidden sizes of each task's tower "
                                           "(an MLP over the body's output, then a logit)")

    def __post_init__(self) -> None:
        _check_choices(self, "multitask.")
        if not _is_count(self.num_experts, 1):
            raise ConfigError(f"multitask.num_experts must be an integer >= 1, "
                              f"got {self.num_experts!r}")
        if not all(_is_count(n, 1) for n in self.tower_layers):
            raise ConfigError(f"multitask.tower_layers must be integers >= 1, "
                              f"got {self.tower_layers!r}")


_MULTITASK_HELP = "multi-task sharing (read with several labels only)"


def _dlrm_cross() -> CrossConfig:
    """DLRM's DCN interaction: 3 layers of rank 64, TorchRec's DLRM-DCN."""
    return CrossConfig(num_layers=3, rank=64)


def _dlrm_terms() -> LogitTerms:
    """DLRM's terms: none, and no penalty (its benchmark shape's defaults, unchanged)."""
    return LogitTerms(fm_dim=0, fm_l2=0.0)


_TERMS_HELP = "additive logit terms: first-order (wide) and factorization machine"
# The defaults of DCN and DNN regularize for small data (chosen over five data sets by
# benchmarks/defaults_study.py, README Defaults): a deep network fits a few thousand rows'
# noise within two or three epochs without them. DLRM keeps its unregularized defaults (the
# benchmark shape of crossrank bench; not part of that study).
_DROPOUT = 0.2
_DROPOUT_WHY = " (default 0.2: regularizes small data; 0 for the unregularized network)"
_EMBEDDING_L2 = 1e-4
_EMBEDDING_L2_WHY = (" (default 1e-4: the penalty falls on the rows a batch touches, so it "
                     "grows with how often a value is seen)")
_SPARSE_WHY = (" (default on: a step updates only the rows the batch touched, several times "
               "faster with large tables, and trained as well in the defaults study)")
_CROSS_HELP = "the cross network"


@dataclass(frozen=True)
class DCNConfig:
    """Deep & Cross Network: a cross network and a deep network over ``[dense, embeddings]``.

    ``structure``: "stacked" (cross then deep), "parallel" (cross and deep both on x0,
    concatenated, then the combination layer: the original DCN design) or "cross_only".
    """

    structure: str = option("stacked", help="stacked: deep(cross(x0)); parallel: [cross(x0), "
                            "deep(x0)]; cross_only: no deep network", choices=STRUCTURES)
    cross: CrossConfig = option(default_factory=CrossConfig, help=_CROSS_HELP)
    deep_layers: tuple[int, ...] = option((256, 128), help="hidden sizes of the deep network")
    dropout: float = option(_DROPOUT, help="dropout after each hidden layer of the deep "
                            "network" + _DROPOUT_WHY)
    norm: str | None = option(None, help="normalization in the deep network's hidden layers",
                              choices=NORMS)
    embedding_l2: float = option(_EMBEDDING_L2, help="L2 penalty on the looked-up embedding "
                                 "rows" + _EMBEDDING_L2_WHY)
    sparse_gradients: bool = option(True, help="sparse gradients for the embedding tables"
                                    + _SPARSE_WHY)
    terms: LogitTerms = option(default_factory=LogitTerms, help=_TERMS_HELP)
    multitask: MultiTaskConfig = option(default_factory=MultiTaskConfig, help=_MULTITASK_HELP)

    def __post_init__(self) -> None:
        _check_choices(self, "")
        _check_non_negative(self, "", "dropout", "embedding_l2")


@dataclass(frozen=True)
class DLRMConfig:
    """DLRM: bottom MLP over dense features to D, embeddings, an interaction, top MLP.

    ``bottom_layers`` must end in the embedding dim D; ``top_layers`` are the hidden sizes of
    the top MLP before its single logit output. ``interaction="dcn"`` runs ``cross`` (any cross
    network, DCN-Mix included) over ``[bottom(dense), e_1..e_F]``.
    """

    bottom_layers: tuple[int, ...] = option((512, 256, 16), help="bottom MLP sizes over the "
                                            "dense features; the last must be embedding_dim")
    top_layers: tuple[int, ...] = option((512, 256), help="hidden sizes of the top MLP "
                                         "(before its logit)")
    interaction: str = option("dot", help="feature interaction: dot products, a cross network "
                              "(dcn) or projection", choices=INTERACTIONS)
    self_interaction: bool = option(False, help="dot interaction: keep each vector's product "
                                    "with itself")
    cross: CrossConfig = option(default_factory=_dlrm_cross,
                                help="the cross network of interaction=dcn")
    projection_branch1: tuple[int, ...] = option((256, 64), help="projection interaction: "
                                                 "first branch's sizes (last: a multiple of D)")
    projection_branch2: tuple[int, ...] = option((256, 64), help="projection interaction: "
                                                 "second branch's sizes (last: a multiple of D)")
    embedding_l2: float = option(0.0, help="L2 penalty on the looked-up embedding rows")
    sparse_gradients: bool = option(False, help="sparse gradients for the embedding tables")
    backend: str = option("auto", help="backend of the dot interaction kernel",
                          choices=BACKENDS)
    terms: LogitTerms = option(default_factory=_dlrm_terms, help=_TERMS_HELP)
    multitask: MultiTaskConfig = option(default_factory=MultiTaskConfig, help=_MULTITASK_HELP)

    def __post_init__(self) -> None:
        _check_choices(self, "")
        _check_non_negative(self, "", "embedding_l2")


@dataclass(frozen=True)
class DNNConfig:
    """Plain deep network over ``[dense, embeddings]``: the baseline without crosses."""

    deep_layers: tuple[int, ...] = option((256, 128), help="hidden sizes of the deep network")
    dropout: float = option(_DROPOUT, help="dropout after each hidden layer" + _DROPOUT_WHY)
    norm: str | None = option(None, help="normalization in the hidden layers", choices=NORMS)
    embedding_l2: float = option(_EMBEDDING_L2, help="L2 penalty on the looked-up embedding "
                                 "rows" + _EMBEDDING_L2_WHY)
    sparse_gradients: bool = option(True, help="sparse gradients for the embedding tables"
                                    + _SPARSE_WHY)
    terms: LogitTerms = option(default_factory=LogitTerms, help=_TERMS_HELP)
    multitask: MultiTaskConfig = option(default_factory=MultiTaskConfig, help=_MULTITASK_HELP)

    def __post_init__(self) -> None:
        _check_choices(self, "")
        _check_non_negative(self, "", "dropout", "embedding_l2")


@dataclass(frozen=True)
class LinearConfig:
    """Logistic (binary) or linear (regression) regression over the same features: a weight per
    categorical value, one per standardized dense feature, an intercept; no embeddings.

    Trained along a regularization path (:mod:`crossrank.train.linear_path`): epoch k solves
    ``mean loss + ||w||^2 / (2 C_k n)`` to convergence with L-BFGS, warm-started, for
    ``C_k = path_start * path_ratio ** k`` (scikit-learn's C: the larger, the weaker the
    penalty; n the training rows, or their total weight); validation after each point and
    early stopping pick C, as they pick the epoch of a network.
    """

    path_start: float = option(1e-3, help="C of the path's first point (the strongest L2)")
    path_ratio: float = option(10 ** 0.5, help="C grows by this factor from one point (epoch) "
                               "to the next")
    max_iter: int = option(1000, help="L-BFGS iterations at most per point of the path")

    def __post_init__(self) -> None:
        for name in ("path_start", "path_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be a number > 0, got {value!r}")
        if not self.path_ratio > 1:
            raise ConfigError(f"path_ratio must be > 1 (the penalty weakens along the path), "
                              f"got {self.path_ratio!r}")
        if not _is_count(self.max_iter, 1):
            raise ConfigError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
