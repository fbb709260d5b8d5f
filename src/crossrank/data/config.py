"""The data, schema and encoder sections of a run's configuration (see :mod:`crossrank.options`).

Each field is one option of ``crossrank train`` and one key of a config file's ``[data]``,
``[schema]`` or ``[encoder]`` table; its default, help and choices are declared here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossrank.data.encoders import DENSE_TRANSFORMS
from crossrank.data.files import FORMATS
from crossrank.data.multi_valued import MultiValuedSpec, parse_multi_valued
from crossrank.data.readers import ON_BAD_ROWS
from crossrank.data.schema import TASKS
from crossrank.errors import ConfigError
from crossrank.options import option

__all__ = ["DEFAULT_MIN_COUNT", "DataConfig", "EncoderConfig", "SchemaConfig"]

# encoder.min_count's default with a learned vocabulary (chosen by benchmarks/defaults_study.py)
DEFAULT_MIN_COUNT = 10


@dataclass(frozen=True)
class DataConfig:
    """Where the training rows come from and what to do with bad ones.

    Example:
        >>> DataConfig(path="train.tsv").on_bad_rows
        'error'
    """

    path: str | None = option(None, help="a file, a directory of shards or a glob (TSV/CSV/"
                              "Parquet); none: synthetic Criteo-shaped clicks with planted crosses")
    format: str | None = option(None, help="file format (none: from the extension, past a "
                                ".gz/.bz2/.zst/.lz4; .tsv/.txt = criteo)",
                                choices=(None, *FORMATS))
    on_bad_rows: str = option("error", help="stop at the first bad row with file/line/column, "
                              "or skip bad rows, count them and write them to the rejects file",
                              choices=ON_BAD_ROWS)
    rejects: str | None = option(None, help="where skipped rows go (none: rejects.jsonl in the "
                                 "output directory)")
    synthetic_rows: int = option(50_000, help="rows of synthetic data when no data path is given")
    keep_parsed_mb: int = option(
        512, help="MiB of parsed rows kept between the encoder's fit pass and the encode pass: "
        "data that fits is parsed once (a Criteo-shaped row takes ~425 bytes); 0: parse the "
        "files twice, the least memory")
    negative_sampling_rate: float = option(
        1.0, help="the fraction of negatives (label 0) kept when the training data was made; "
        "predict and evaluate recalibrate probabilities p to p / (p + (1 - p) / rate) "
        "(recorded in model.json; 1: no downsampling)")

    def __post_init__(self) -> None:
        if self.synthetic_rows < 1:
            raise ConfigError(f"synthetic_rows must be positive, got {self.synthetic_rows!r}")
        if isinstance(self.keep_parsed_mb, bool) or not isinstance(self.keep_parsed_mb, int) \
                or self.keep_parsed_mb < 0:
            raise ConfigError("keep_parsed_mb must be an integer >= 0 (MiB; 0: parse twice), "
                              f"got {self.keep_parsed_mb!r}")
        rate = self.negative_sampling_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
            raise ConfigError("negative_sampling_rate must be in (0, 1] (the fraction of "
                              f"negatives kept), got {rate!r}")


@dataclass(frozen=True)
class SchemaConfig:
    """Which columns are the label, the features and the row id, and the task.

    Columns not named are inferred from the file (CSV, Parquet; Criteo's layout is fixed). A
    schema file (``file``) holds the same keys as JSON; a key given both there and here with
    another value is an error, never silently overridden.

    Example:
        >>> SchemaConfig(label="clicked", categorical=("ad", "site")).categorical
        ('ad', 'site')
    """

    file: str | None = option(None, help="schema JSON file: label, dense, categorical, "
                              "id_column, task")
    label: str | None = option(None, help="label column (none: Criteo's, or a column named "
                               "'label'); several, comma-separated (click,conversion), train "
                               "one model with a tower per label (multi-task)")
    dense: tuple[str, ...] = option((), help="dense (numeric) feature columns; others inferred")
    categorical: tuple[str, ...] = option((), help="categorical feature columns; others inferred")
    id_column: str | None = option(None, help="row id column, carried through to predictions")
    exclude: tuple[str, ...] = option((), help="columns that are not features (left out of "
                                      "inference)")
    multi_valued: tuple[str, ...] = option((), help="multi-valued fields, never inferred: "
                                           "NAME:SEP[:KEY=VALUE]... with SEP a separator or "
                                           "comma/space/tab/pipe/semicolon/colon and KEY one of "
                                           "pooling (sum|mean|max), max_length (50), keep "
                                           "(first|last), min_count, hash_buckets, e.g. "
                                           "genres:pipe or history:space:pooling=mean:keep=last")
    task: str | None = option(None, help="binary (log-loss on 0/1 labels) or regression "
                              "(MSE); one per label, comma-separated, or one for every label; "
                              "none: the schema file's, else binary")
    weight_column: str | None = option(None, help="per-row weight column (finite, >= 0; "
                                       "missing or negative: a bad row): every loss and "
                                       "metric is weighted, weight 0 rows count for nothing")

    def __post_init__(self) -> None:
        self.multi_valued_specs()  # a bad spec is an error now, not when the data is read
        labels = self.label_names()
        if len(set(labels)) != len(labels) or not all(labels):
            raise ConfigError(f"schema.label must name distinct columns, got {self.label!r}")
        if self.task is not None:
            self.task_names(len(labels) or 1)

    def label_names(self) -> tuple[str, ...]:
        """The label columns named (comma-separated), none when ``label`` is None.

        Example:
            >>> SchemaConfig(label="click, conversion").label_names()
            ('click', 'conversion')
        """
        return () if self.label is None else tuple(n.strip() for n in self.label.split(","))

    def task_names(self, count: int) -> tuple[str, ...]:
        """The task of each of ``count`` labels: one per label, or one repeated for every label
        (none given: binary).

        Example:
            >>> SchemaConfig(task="binary").task_names(2)
            ('binary', 'binary')
        """
        tasks = tuple(t.strip() for t in (self.task or "binary").split(","))
        bad = [t for t in tasks if t not in TASKS]
        if bad:
            raise ConfigError(f"schema.task must be one of {list(TASKS)} (one per label, "
                              f"comma-separated), got {self.task!r}")
        if len(tasks) == 1:
            return tasks * count
        if len(tasks) != count:
            raise ConfigError(f"schema.task names {len(tasks)} tasks ({self.task!r}) for "
                              f"{count} labels ({self.label!r}): give one per label, or one")
        return tasks

    def multi_valued_specs(self) -> tuple[MultiValuedSpec, ...]:
        """The ``multi_valued`` spec strings, parsed."""
        try:
            return tuple(parse_multi_valued(text) for text in self.multi_valued)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"schema.multi_valued: {err}") from None


@dataclass(frozen=True)
class EncoderConfig:
    """How raw values become model inputs (see :class:`~crossrank.data.FeatureEncoder`).

    ``min_count`` none (the default) is :data:`DEFAULT_MIN_COUNT` with a learned vocabulary
    and 1 with ``hash_buckets`` (hashing keeps every value); :meth:`encoder_options` resolves
    it. :class:`~crossrank.data.FeatureEncoder` itself keeps every value by default
    (``min_count=1``): this default is the command line's and the config file's.

    Example:
        >>> EncoderConfig(min_count=10).dense_transform
        'log1p'
        >>> EncoderConfig().encoder_options()["min_count"]
        10
        >>> EncoderConfig(hash_buckets=1000).encoder_options()["min_count"]
        1
    """

    dense_transform: str = option("log1p", help="dense feature transform",
                                  choices=DENSE_TRANSFORMS)
    missing_indicator: bool = option(False, help="add a 0/1 column per dense feature marking "
                                     "missing values")
    min_count: int | None = option(
        None, help="categorical values seen fewer times become out-of-vocabulary (none: "
        f"{DEFAULT_MIN_COUNT} with a vocabulary, 1 with hash_buckets; a value seen a few "
        "times gets an embedding that memorizes its rows: rare values sharing one id helped on "
        "every data set of README Defaults)")
    hash_buckets: int | None = option(None, help="hash categorical values into this many "
                                      "buckets instead of learning a vocabulary")

    def __post_init__(self) -> None:
        if self.min_count is not None and self.min_count < 1:
            raise ConfigError(f"min_count must be >= 1 (or none), got {self.min_count!r}")
        if self.hash_buckets is not None and self.min_count not in (None, 1):
            raise ConfigError(f"encoder.min_count={self.min_count!r} (--min-count) with "
                              "encoder.hash_buckets (--hash-buckets): hashing keeps every "
                              "value; leave min_count unset (or 1)")
        if self.hash_buckets is not None and self.hash_buckets < 2:
            raise ConfigError(f"hash_buckets must be >= 2 (or none), got {self.hash_buckets!r}")

    def encoder_options(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~crossrank.data.FeatureEncoder`, ``min_count``
        resolved."""
        min_count = self.min_count
        if min_count is None:
            min_count = 1 if self.hash_buckets is not None else DEFAULT_MIN_COUNT
        return {"dense_transform": self.dense_transform,
                "missing_indicator": self.missing_indicator, "min_count": min_count,
                "hash_buckets": self.hash_buckets}
