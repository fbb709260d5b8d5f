"""The options of ``crossrank evaluate`` beyond the data's (see :mod:`crossrank.options`): each
field is one flag, its default, help and choices declared here only."""

from __future__ import annotations

from dataclasses import dataclass

from crossrank.errors import ConfigError
from crossrank.options import option


@dataclass(frozen=True)
class EvaluateConfig:
    """What ``crossrank evaluate`` reports beside the metrics of every row.

    Example:
        >>> EvaluateConfig(group_by="user_id").bins
        10
    """

    group_by: str | None = option(None, help="column grouping the rows (a user, a query) for "
                                  "the group AUC: gauc (mean of the groups' AUCs weighted by "
                                  "their rows, or row weights) and uauc (unweighted mean), "
                                  "skipping one-class groups; read from the files, it need "
                                  "not be a model feature")
    plots: str | None = option(None, help="directory to write reliability.png into: observed "
                               "against predicted rate in equal-count bins, rows per bin")
    bins: int = option(10, help="equal-count bins of the reliability diagram")

    def __post_init__(self) -> None:
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 1:
            raise ConfigError(f"bins must be a positive integer, got {self.bins!r}")
        for name in ("group_by", "plots"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} must be a non-empty string or none, got {value!r}")
