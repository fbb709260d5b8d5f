"""Data: schemas, streaming readers with row validation, feature encoders, encoded caches,
synthetic click logs and the MovieLens 100K loader.

Importing this package imports pyarrow (and torch, for the batches); ``import crossrank``
alone does not.
"""

from crossrank.data.cache import concatenate_caches, encode_to_cache, remove_cache
from crossrank.data.column_check import check_columns
from crossrank.data.dataset import EncodedDataset
from crossrank.data.encode_stream import encode_stream
from crossrank.data.encoders import DENSE_TRANSFORMS, EncodedBatch, FeatureEncoder
from crossrank.data.files import FORMATS, Format, infer_format, list_shards
from crossrank.data.fit_stats import FitStats
from crossrank.data.hashing import stable_hash64
from crossrank.data.infer import infer_schema
from crossrank.data.infer_report import ColumnReport, InferredSchema
from crossrank.data.movielens import load_movielens_100k, movielens_schema
from crossrank.data.multi_valued import MultiValuedSpec, parse_multi_valued
from crossrank.data.order import EpochOrder
from crossrank.data.readers import empty_table, iter_tables, read_table
from crossrank.data.rejects import REASONS, BadInputError, RejectsLog
from crossrank.data.schema import TASKS, TableSchema, criteo_schema, load_schema, save_schema
from crossrank.data.synthetic import SyntheticSpec, make_synthetic_clicks, write_synthetic
from crossrank.data.synthetic_default import write_default_synthetic
from crossrank.data.synthetic_history import HistorySpec, make_history_clicks
from crossrank.data.writers import write_table

__all__ = [
    "DENSE_TRANSFORMS",
    "FORMATS",
    "REASONS",
    "TASKS",
    "BadInputError",
    "ColumnReport",
    "EncodedBatch",
    "EncodedDataset",
    "EpochOrder",
    "FeatureEncoder",
    "FitStats",
    "Format",
    "HistorySpec",
    "InferredSchema",
    "MultiValuedSpec",
    "RejectsLog",
    "SyntheticSpec",
    "TableSchema",
    "check_columns",
    "concatenate_caches",
    "criteo_schema",
    "empty_table",
    "encode_stream",
    "encode_to_cache",
    "infer_format",
    "infer_schema",
    "iter_tables",
    "list_shards",
    "load_movielens_100k",
    "load_schema",
    "make_history_clicks",
    "make_synthetic_clicks",
    "movielens_schema",
    "parse_multi_valued",
    "read_table",
    "remove_cache",
    "save_schema",
    "stable_hash64",
    "write_default_synthetic",
    "write_synthetic",
    "write_table",
]
