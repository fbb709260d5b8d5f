"""The default model, ``model.name = "auto"``: DCN-V2, or the linear model on a small data set.

A network with embeddings needs a few thousand rows before its crosses pay: below that a
logistic regression tuned on the validation rows beats crossrank's network defaults on
Criteo's learning curve and on the 150-row smoke case (RESULTS.md, "small data"). So ``auto``
resolves, once the training data is encoded and its rows are counted, to

* ``linear`` (:class:`~crossrank.models.linear.LinearModel`) when the training data has
  fewer than :data:`~crossrank.models.registry.AUTO_LINEAR_ROWS` rows and one label, in one
  process (the linear model does not train under ``torchrun``);
* ``dcn`` with its defaults otherwise.

A model option given (an option of the network, the embedding dim included, even at its
default value) says the network is wanted: such a section is ``dcn`` from the start
(:func:`~crossrank.pipeline.run_config.build_model_section`).

The resolved name is what the run writes into ``run.toml`` and ``model.json``, so
``crossrank train --config run.toml`` trains the same family whatever its data's size.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from crossrank.data.config import EncoderConfig
from crossrank.distributed import current_context
from crossrank.errors import ConfigError
from crossrank.models.config import LinearConfig
from crossrank.models.registry import AUTO_LINEAR_ROWS, AUTO_MODEL, AUTO_OPTIONS_FAMILY
from crossrank.pipeline.run_config import ModelSection, build_model_section


def resolve_auto_model(model: ModelSection, rows: int, num_labels: int) -> ModelSection:
    """``model`` with ``"auto"`` resolved for ``rows`` training rows and ``num_labels``
    labels (see the module doc); any other name unchanged.

    Example:
        >>> auto = build_model_section({})
        >>> resolve_auto_model(auto, 150, 1).name, resolve_auto_model(auto, 10_000, 1).name
        ('linear', 'dcn')
        >>> resolve_auto_model(build_model_section({"deep_layers": [8]}), 150, 1).name
        'dcn'
    """
    if model.name != AUTO_MODEL:
        return model
    if rows < AUTO_LINEAR_ROWS and num_labels == 1 and not current_context().is_distributed:
        return ModelSection(name="linear", embedding_dim=model.embedding_dim,
                            config=LinearConfig())
    return dataclasses.replace(model, name=AUTO_OPTIONS_FAMILY)


def encoder_for(encoder: EncoderConfig, family: str) -> EncoderConfig:
    """``encoder`` for model ``family``: the linear model keeps every categorical value
    (``min_count`` none -> 1: its L2 shrinks a rare value's weight, where a network's
    embedding would memorize its rows; scikit-learn's baseline does the same); a value
    given, and every other family, unchanged."""
    if family != "linear" or encoder.min_count is not None or encoder.hash_buckets is not None:
        return encoder
    return dataclasses.replace(encoder, min_count=1)


def auto_line(model: ModelSection, rows: int) -> str | None:
    """The log line of a run whose ``auto`` model resolved to ``model`` (None for dcn)."""
    if model.name != "linear":
        return None
    return (f"model: linear (logistic or linear regression, its L2 chosen on the validation "
            f"rows): {rows:,} training rows, fewer than the {AUTO_LINEAR_ROWS:,} a network "
            "needs to beat it (--model dcn for the network)")


def auto_from_saved(model: ModelSection, saved: dict[str, Any] | None) -> ModelSection:
    """For ``--resume``: the family a saved run's ``auto`` resolved to, when the saved run's
    model section is one ``model`` (an unresolved ``auto``) can resolve to; else ``model``."""
    if model.name != AUTO_MODEL or not saved or not isinstance(saved.get("model"), dict):
        return model
    try:
        old = build_model_section(saved["model"])
    except ConfigError:  # an unreadable section is check_resume's to report
        return model
    for rows in (0, AUTO_LINEAR_ROWS):  # what auto gives on small data, and on larger
        if resolve_auto_model(model, rows, 1) == old:
            return old
    return model
