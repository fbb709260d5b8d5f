"""Out-of-vocabulary shares at scoring time: the expected share (Good-Turing) against hand
counts and against fresh samples of the same source, and the warning `predict` and `evaluate`
give when a field's values are written differently than in training ("863" vs "863.0")."""

import numpy as np
import pyarrow as pa
import pytest

from crossrank.cli import main
from crossrank.data import FeatureEncoder, TableSchema
from crossrank.data.oov_share import MIN_ROWS, OOVTally, expected_oov_share, oov_warnings


def test_expected_share_is_the_good_turing_mass_of_what_the_vocabulary_leaves_out():
    # counts: a 9, b 4, c 2, d 2, e 1, f 1, g 1 -> N = 20 non-missing of 25 rows
    counts = pa.table({"value": list("abcdefg"), "count": [9, 4, 2, 2, 1, 1, 1]})
    n1, n2, n3 = 3, 2, 0
    # min_count 1: only the unseen mass n1 / N, over the rows
    assert expected_oov_share(counts, rows=25, min_count=1, max_vocab_size=None) == \
        pytest.approx(n1 / 25)
    # min_count 3: unseen (n1) + seen once (2 n2) + seen twice (3 n3)
    assert expected_oov_share(counts, rows=25, min_count=3, max_vocab_size=None) == \
        pytest.approx((n1 + 2 * n2 + 3 * n3) / 25)
    # max_vocab_size 1 keeps only "a": b, c, d (min_count 2 keeps them) are dropped at their
    # training counts, plus the unseen and seen-once masses
    assert expected_oov_share(counts, rows=25, min_count=2, max_vocab_size=1) == \
        pytest.approx((n1 + 2 * n2 + 4 + 2 + 2) / 25)
    assert expected_oov_share(counts.slice(0, 0), rows=25, min_count=1, max_vocab_size=None) == 0


@pytest.mark.parametrize("min_count", [1, 3])
def test_expected_share_predicts_new_rows_from_the_same_source(min_count):
    """A long-tailed field (Zipf over 20,000 values): the share of a fresh sample's values out
    of the vocabulary learned on the first sample is what the training counts predicted. The
    sampling error of a 40,000-row share is below 0.003; the estimate's own below 0.01."""
    rng = np.random.default_rng(7)
    p = 1.0 / np.arange(1, 20_001) ** 1.1
    p /= p.sum()

    def sample(n):
        return pa.table({"city": pa.array(rng.choice(20_000, size=n, p=p).astype(str))})

    schema = TableSchema(label=None, dense=(), categorical=("city",))
    enc = FeatureEncoder(schema, min_count=min_count).fit([sample(40_000)])
    expected = enc.expected_oov["city"]
    tally = OOVTally(("city",))
    tally.add(enc.transform(sample(40_000)).sparse)
    assert 0.05 < expected < 0.5
    assert tally.shares()["city"] == pytest.approx(expected, abs=0.015)
    assert oov_warnings(tally, enc.expected_oov) == []


def test_warning_rule_and_an_encoder_saved_before_it():
    tally = OOVTally(("a", "b"))
    tally.add(np.array([[1, 2]] * 12 + [[2, 2]] * 8))  # a: 60% out of vocabulary, b: none
    assert [w.split(":")[0] for w in oov_warnings(tally, {"a": 0.05, "b": 0.0})] == ["a"]
    assert oov_warnings(tally, {"a": 0.45, "b": 0.0}) == []  # 0.6 is under 2 x 0.45
    assert oov_warnings(tally, {"a": 0.2, "b": 0.0})  # 0.6 >= 0.3 and >= 0.4
    assert [w.split(":")[0] for w in oov_warnings(tally, None)] == ["a"]  # no record: >= 50%
    few = OOVTally(("a",))
    few.add(np.ones((MIN_ROWS - 1, 1), dtype=np.int64))
    assert oov_warnings(few, {"a": 0.0}) == []  # too few rows to tell


def test_encoder_round_trip_keeps_the_expected_share_and_reads_older_files(tmp_path):
    schema = TableSchema(label=None, dense=(), categorical=("city",))
    enc = FeatureEncoder(schema).fit([pa.table({"city": ["x", "x", "y"]})])
    enc.save(tmp_path)
    assert FeatureEncoder.load(tmp_path).expected_oov == enc.expected_oov == {"city": 0.333333}
    old = enc.to_dict()
    del old["expected_oov_share"]  # written before the check existed
    assert FeatureEncoder.from_dict(old).expected_oov is None


def _csv(path, rows, written=str):
    lines = ["label,price,movie"] + [f"{i % 2},{i % 7},{written(i % 40)}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def movie_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("oov_model")
    assert main(["train", "--data", str(_csv(root / "train.csv", 400)), "--label", "label",
                 "--dense", "price", "--categorical", "movie", "--epochs", "1", "--no-progress",
                 "--min-count", "1",  # every value in the vocabulary: only spelling makes OOV
                 "--out", str(root / "m"), "--model-option", "deep_layers=[8]"]) == 0
    return root / "m"


def test_predict_and_evaluate_warn_when_values_are_written_differently(movie_model, tmp_path,
                                                                        capsys):
    same = _csv(tmp_path / "same.csv", 100)
    floats = _csv(tmp_path / "floats.csv", 100, written=lambda v: f"{v}.0")  # "7" -> "7.0"
    for command in (["predict", str(movie_model), "--data", str(same), "--out",
                     str(tmp_path / "s.csv")],
                    ["evaluate", str(movie_model), "--data", str(same)]):
        capsys.readouterr()
        assert main(command) == 0
        assert "out of the vocabulary" not in capsys.readouterr().err
    for command in (["predict", str(movie_model), "--data", str(floats), "--out",
                     str(tmp_path / "f.csv")],
                    ["evaluate", str(movie_model), "--data", str(floats)]):
        capsys.readouterr()
        assert main(command) == 0
        err = capsys.readouterr().err
        assert "warning: movie: 100.0% of its values are out of the vocabulary here" in err
        assert '"863" vs "863.0"' in err
