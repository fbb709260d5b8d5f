"""FitStats: exact dense sums, value counts that add up, and fitting an encoder from the merged
statistics of parts of the data exactly as from all of it."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest

from crossrank.data import FeatureEncoder, FitStats, TableSchema
from crossrank.data.fit_stats import exact_sums

SCHEMA = TableSchema(label="y", dense=("a", "b"), categorical=("u", "v"))


def clicks(rows: int, seed: int) -> pa.Table:
    """Zipf-like categorical values (many seen once or twice) and dense values whose mean is
    large beside their spread (where a one-pass float variance loses digits)."""
    rng = np.random.default_rng(seed)
    a = 1e9 + rng.normal(size=rows)
    a[rng.random(rows) < 0.1] = np.nan
    b = rng.exponential(size=rows) * 10.0 ** rng.integers(-150, 150, rows)  # wide exponents
    u = rng.zipf(1.5, rows) % 500
    v = rng.integers(0, 40, rows)
    return pa.table({
        "y": pa.array(rng.integers(0, 2, rows).astype(np.float64)),
        "a": pa.array(a, from_pandas=True), "b": pa.array(b),
        "u": pa.array([f"u{x}" for x in u]),
        "v": pa.array([None if x == 0 else f"v{x}" for x in v], pa.string()),
    })


ALL = clicks(3000, 0)
# three parts of unequal sizes, each cut into chunks of its own
PARTS = [ALL.slice(0, 700), ALL.slice(700, 1900), ALL.slice(2600)]


def chunks(table: pa.Table, size: int) -> list[pa.Table]:
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


def reference_mean_std(x: np.ndarray) -> tuple[float, float]:
    """Correctly rounded mean and population std from rationals (the float64 reference)."""
    q = [Fraction(v) for v in x.tolist()]
    n = len(q)
    mean = sum(q) / n
    var = sum((v - mean) ** 2 for v in q) / n
    return float(mean), float(np.sqrt(float(var)))


def test_exact_sums_are_the_rational_sums_of_any_finite_floats():
    x = np.array([5e-324, -5e-324, 1e308, -1e308, 1e-300, 2.0**52 + 1, -0.1, 0.0, -0.0, 3.0])
    x = np.concatenate([x, np.random.default_rng(1).normal(size=70_000) * 1e12])  # > one slice
    s1, s2 = exact_sums(x)
    assert Fraction(s1, 2**1126) == sum(Fraction(v) for v in x.tolist())
    assert Fraction(s2, 2**2252) == sum(Fraction(v) ** 2 for v in x.tolist())
    assert exact_sums(np.array([])) == (0, 0)


def test_mean_and_std_are_correctly_rounded_whatever_the_chunks():
    a = ALL["a"].to_numpy(zero_copy_only=False)
    a = a[~np.isnan(a)]
    expected = reference_mean_std(a)
    for size in (1, 7, 3000):
        stats = FitStats.collect(chunks(ALL, size), dense=("a",))
        mean, std = stats.mean_std()
        assert (mean[0], std[0]) == expected  # bit for bit
    # the textbook one-pass float formula is off here: the check above is not vacuous
    naive = np.sqrt(np.mean(a * a) - np.mean(a) ** 2)
    assert naive != expected[1]


def test_merged_parts_equal_the_whole_in_any_order():
    whole = FitStats.collect([ALL], dense=SCHEMA.dense, categorical=SCHEMA.categorical)
    parts = [FitStats.collect(chunks(p, 250), dense=SCHEMA.dense,
                              categorical=SCHEMA.categorical) for p in PARTS]
    for merged in (FitStats.merge(parts), FitStats.merge(parts[::-1])):
        assert merged.num_rows == whole.num_rows == 3000
        for got, want in zip(merged.mean_std(), whole.mean_std()):
            np.testing.assert_array_equal(got, want)
        for field in SCHEMA.categorical:
            def as_dict(t: pa.Table) -> dict:
                return dict(zip(t["value"].to_pylist(), t["count"].to_pylist()))
            assert as_dict(merged.value_counts(field)) == as_dict(whole.value_counts(field))
    # nulls are not values; every non-null value is counted once
    v = whole.value_counts("v")
    assert sum(v["count"].to_pylist()) == ALL["v"].drop_null().length() < 3000


@pytest.mark.parametrize("options", [
    {"min_count": 3},
    {"min_count": 2, "max_vocab_size": 25, "dense_transform": "standardize"},
    {"hash_buckets": 64, "dense_transform": "standardize", "missing_indicator": True},
    {"dense_transform": "standardize"},
])
def test_fit_from_the_stats_of_parts_equals_fit_over_everything(options, tmp_path):
    whole = FeatureEncoder(SCHEMA, **options).fit(chunks(ALL, 1000))
    parts = []
    for k, part in enumerate(PARTS):  # each part's statistics through their files
        FeatureEncoder(SCHEMA, **options).partial_fit(chunks(part, 333)).save(tmp_path / f"p{k}")
        parts.append(FitStats.load(tmp_path / f"p{k}"))
    merged = FeatureEncoder(SCHEMA, **options).fit_from_stats(parts)
    assert merged.to_dict() == whole.to_dict()  # vocabularies in id order, mean/std bitwise
    a, b = whole.transform(ALL), merged.transform(ALL)
    np.testing.assert_array_equal(a.dense, b.dense)
    np.testing.assert_array_equal(a.sparse, b.sparse)
    if "min_count" in options and "max_vocab_size" not in options:
        # the cut is applied to the merged counts: values below min_count in every part but
        # not overall are kept (cutting each part's counts would drop them)
        per_part = [dict(zip(s.value_counts("u")["value"].to_pylist(),
                             s.value_counts("u")["count"].to_pylist())) for s in parts]
        values = set().union(*per_part)
        rare_everywhere = {v for v in values
                           if all(c.get(v, 0) < options["min_count"] for c in per_part)
                           and sum(c.get(v, 0) for c in per_part) >= options["min_count"]}
        assert rare_everywhere and rare_everywhere <= set(merged.vocabulary("u"))


def test_stats_files_are_json_and_arrow(tmp_path):
    stats = FitStats.collect([ALL], dense=("a",), categorical=("u",))
    stats.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.arrow", "stats.json"]
    state = json.loads((tmp_path / "stats.json").read_text())
    n, s1 = state["dense"]["a"]["count"], int(state["dense"]["a"]["sum"], 16)
    assert n == int(ALL["a"].drop_null().length())
    assert float(Fraction(s1, n << 1126)) == stats.mean_std()[0][0]  # the sum, in plain text
    loaded = FitStats.load(tmp_path)
    assert loaded.num_rows == stats.num_rows
    np.testing.assert_array_equal(loaded.mean_std()[0], stats.mean_std()[0])
    assert loaded.value_counts("u").equals(stats.value_counts("u"))


def test_mismatched_statistics_are_refused():
    a = FitStats.collect([ALL], dense=("a",), categorical=("u",))
    b = FitStats.collect([ALL], dense=("b",), categorical=("u",))
    with pytest.raises(ValueError, match="cannot merge FitStats of other columns"):
        FitStats.merge([a, b])
    hashing = FeatureEncoder(SCHEMA, hash_buckets=8).partial_fit([ALL])
    with pytest.raises(ValueError, match="this encoder needs dense"):
        FeatureEncoder(SCHEMA).fit_from_stats([hashing])
    with pytest.raises(TypeError, match="non-empty"):
        FeatureEncoder(SCHEMA).fit_from_stats([])
    with pytest.raises(TypeError, match="iterable of tables"):
        FitStats.collect(ALL)
    with pytest.raises(ValueError, match="field must be one of"):
        a.value_counts("v")
