"""A few rows (a row being scored) are encoded value by value in Python; the ids must be
those of the vectorised path that every larger batch takes, for any text or integer."""

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.data import FeatureEncoder, TableSchema
from crossrank.data.field_ids import FEW_ROWS
from crossrank.data.hashing import stable_hash64, stable_hash64_one
from crossrank.data.vocabulary import Vocabulary

SCHEMA = TableSchema(label=None, dense=("x",), categorical=("word", "number"))
TRAIN = pa.table({"x": [1.0, 2.0, None, 4.0] * 5,
                  "word": ["a", "é", "", "long" * 30, "a"] * 4,
                  "number": pa.array([-3, 0, 7, 2**40, None] * 4, pa.int64())})
ENCODERS = {"vocabulary": FeatureEncoder(SCHEMA, min_count=2).fit([TRAIN]),
            "hashed": FeatureEncoder(SCHEMA, hash_buckets=1000).fit([TRAIN])}
words = st.one_of(st.none(), st.sampled_from(["a", "é", "", "long" * 30, "b"]),
                  st.text(max_size=40))
numbers = st.one_of(st.none(), st.sampled_from([-3, 0, 7, 2**40]),
                    st.integers(-2**63, 2**63 - 1))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(words, numbers), min_size=1, max_size=FEW_ROWS))
def test_few_rows_get_the_vectorised_ids(rows):
    table = pa.table({"x": [1.0] * len(rows), "word": pa.array([w for w, _ in rows],
                                                                 pa.string()),
                      "number": pa.array([k for _, k in rows], pa.int64())})
    copies = FEW_ROWS // len(rows) + 1  # enough rows for the vectorised path
    for encoder in ENCODERS.values():
        few = encoder.transform(table).sparse
        many = encoder.transform(pa.concat_tables([table] * copies)).sparse[:len(rows)]
        np.testing.assert_array_equal(few, many)


def test_the_scalar_hash_and_lookup_equal_the_vectorised_ones():
    rng = np.random.default_rng(0)
    texts = ["", "a", "é", "日本語", "x" * 600] + ["".join(map(chr, rng.integers(32, 0x3000, n)))
                                                 for n in rng.integers(0, 30, 50)]
    hashes = stable_hash64(pa.array(texts))
    assert [stable_hash64_one(t.encode()) for t in texts] == [int(h) for h in hashes]
    vocab = Vocabulary(pa.array(texts[::2]))
    assert [vocab.lookup_one(t) for t in texts] == vocab.lookup(pa.array(texts)).tolist()
    vocab.exact = True  # the fallback kept for two values with one hash
    assert [vocab.lookup_one(t) for t in texts] == vocab.lookup(pa.array(texts)).tolist()
    assert Vocabulary(pa.array([], pa.string())).lookup_one("a") == 1  # OOV


def test_other_categorical_types_keep_the_vectorised_text_form():
    schema = TableSchema(label=None, dense=(), categorical=("flag",))
    encoder = FeatureEncoder(schema, min_count=1).fit([pa.table({"flag": [True, False]})])
    got = encoder.transform(pa.table({"flag": [True, None]})).sparse[:, 0].tolist()
    assert got[1] == 0 and got[0] >= 2  # "true" is in the vocabulary


def test_empty_text_is_missing_in_a_few_values_as_in_many():
    from crossrank.data.validate import empty_as_missing

    for values in (["a", "", None], ["", "b"], ["a"], [b"", b"x"], [b"x"]):
        few = empty_as_missing(pa.array(values))
        many = empty_as_missing(pa.array(values * 10))
        assert few.to_pylist() * 10 == many.to_pylist()
        assert "" not in few.to_pylist() and b"" not in few.to_pylist()


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(words, words), min_size=FEW_ROWS + 1, max_size=120))
def test_hashed_fields_encoded_together_get_each_fields_ids(rows):
    """A request-sized batch hashes all its fields in one pass; the ids are those of one field
    at a time (what a file's large chunks take)."""
    from crossrank.data import field_ids

    schema = TableSchema(label=None, dense=(), categorical=("a", "b"))
    encoder = FeatureEncoder(schema, hash_buckets=97).fit([pa.table({"a": ["x"], "b": ["y"]})])
    table = pa.table({"a": pa.array([a for a, _ in rows], pa.string()),
                      "b": pa.array([b for _, b in rows], pa.string())})
    together = encoder.transform(table).sparse
    saved = field_ids.TOGETHER_ROWS
    field_ids.TOGETHER_ROWS = 0  # one field at a time
    try:
        apart = encoder.transform(table).sparse
    finally:
        field_ids.TOGETHER_ROWS = saved
    np.testing.assert_array_equal(together, apart)
    assert together.shape == (len(rows), 2)
