"""The Scorer: raw rows -> scores equal to ``crossrank predict``'s, without importing torch,
from a checked export directory; bad rows named by row and column."""

import csv
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
import torch

from crossrank.cli import main
from crossrank.data import TableSchema, read_table
from crossrank.errors import ModelFileError
from crossrank.models import build_model
from crossrank.serving import BadRowsError, Scorer, read_manifest
from crossrank.serving.export import export_model

PREDICT_ATOL = 1e-6  # the bound; predict writes 8 significant digits


def _predicted(model_dir, data, out, capsys=None):
    assert main(["predict", str(model_dir), "--data", str(data), "--out", str(out)]) == 0
    rows = list(csv.reader(out.open()))[1:]
    assert all(r[-1] == "ok" for r in rows)
    return np.array([float(r[0]) for r in rows])


def _records(model_dir, data):
    """The file's rows as JSON-like dicts (nulls for missing), label dropped."""
    meta = json.loads((model_dir / "model.json").read_text())
    schema = TableSchema.from_dict(meta["table_schema"])
    table = read_table(data, fmt="criteo", schema=schema)
    return table.drop_columns([schema.label]).to_pylist()


def test_scores_equal_crossrank_predict_from_a_file_rows_and_a_table(criteo_export, tmp_path):
    model_dir, export_dir, data = criteo_export
    expected = _predicted(model_dir, data, tmp_path / "scores.csv")
    scorer = Scorer(export_dir, threads=1)
    records = _records(model_dir, data)
    # the file holds missing dense and categorical values, and values unseen in training
    assert any(v is None for r in records for v in r.values())
    vocab = set(scorer.encoder.vocabulary("C1"))
    assert any(r["C1"] is not None and r["C1"] not in vocab for r in records)
    for got in (scorer.score_file(data), scorer.score(records),
                scorer.score(pa.Table.from_pylist(records))):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=PREDICT_ATOL)
    # one row alone scores as it does in a batch
    np.testing.assert_allclose(scorer.score(records[7:8]), expected[7:8], rtol=0,
                               atol=PREDICT_ATOL)
    assert scorer.score([]).shape == (0,)


def test_a_pandas_data_frame_scores_like_the_records(criteo_export, genres_export, tmp_path):
    """pandas' own missing values (NaN in a float column, None or pd.NA in an object or
    nullable column) are missing values, a ``category`` column reads as its texts, and the
    index is ignored."""
    pd = pytest.importorskip("pandas")
    model_dir, export_dir, data = criteo_export
    expected = _predicted(model_dir, data, tmp_path / "scores.csv")
    scorer = Scorer(export_dir, threads=1)
    frame = pd.DataFrame(_records(model_dir, data), index=np.arange(5, 5 + len(expected)) * 3)
    assert frame["I1"].dtype == np.float64 and frame["I1"].isna().any()  # None became NaN
    assert frame["C3"].isna().any()
    frame["C1"] = frame["C1"].astype("category")
    frame["C2"] = frame["C2"].astype("string")  # pandas' nullable text: pd.NA for missing
    np.testing.assert_allclose(scorer.score(frame), expected, rtol=0, atol=PREDICT_ATOL)
    model_dir, export_dir, data = genres_export
    expected = _predicted(model_dir, data, tmp_path / "genres.csv")
    lists = [dict(r, genres=None if r["genres"] is None else r["genres"].split("|"))
             for r in _genres_records(data)]
    got = Scorer(export_dir, threads=1).score(pd.DataFrame(lists))  # an object column of lists
    np.testing.assert_allclose(got, expected, rtol=0, atol=PREDICT_ATOL)


@pytest.mark.parametrize("export", ["criteo_export", "genres_export"])
def test_the_scoring_path_imports_no_torch(export, request):
    """In a process where importing torch raises, the Scorer scores; torch stays unloaded
    (a model with a multi-valued field too)."""
    model_dir, export_dir, data = request.getfixturevalue(export)
    code = f"""
import importlib.abc, json, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
from crossrank.serving import Scorer
from crossrank.serving.server import build_app
scores = Scorer({str(export_dir)!r}, threads=1).score_file({str(data)!r})
build_app({str(export_dir)!r})
assert "torch" not in sys.modules
print(json.dumps(scores.tolist()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    in_process = Scorer(export_dir).score_file(data)
    np.testing.assert_allclose(json.loads(out.stdout), in_process, rtol=0, atol=1e-7)


@pytest.mark.parametrize("change, problem", [
    (lambda r: r.pop("C3"), ("missing_column", 2, "C3")),
    (lambda r: r.update(I2="abc"), ("non_numeric", 2, "I2")),
    (lambda r: r.update(I2=float("nan")), ("non_finite", 2, "I2")),
    (lambda r: r.update(I5=float("-inf")), ("non_finite", 2, "I5")),
    (lambda r: r.update(I5=True), ("non_numeric", 2, "I5")),
    (lambda r: r.update(C4=1.5), ("bad_value", 2, "C4")),
    (lambda r: r.update(C4={"a": 1}), ("bad_value", 2, "C4")),
])
def test_a_bad_row_is_named_by_row_and_column(criteo_export, change, problem):
    model_dir, export_dir, data = criteo_export
    records = _records(model_dir, data)[:5]
    change(records[2])
    with pytest.raises(BadRowsError) as caught:
        Scorer(export_dir).score(records)
    assert (caught.value.kind, caught.value.row, caught.value.column) == problem
    assert f"row 2, column {problem[2]!r}" in str(caught.value)


def test_unseen_and_integer_categories_are_not_errors(criteo_export):
    model_dir, export_dir, data = criteo_export
    scorer = Scorer(export_dir)
    records = _records(model_dir, data)[:3]
    unseen = [dict(r, C1="never-seen-value", C2=12345678901234567890) for r in records]
    oov = [dict(r, C1="another-unseen", C2="12345678901234567890") for r in records]
    np.testing.assert_array_equal(scorer.score(unseen), scorer.score(oov))  # both OOV
    with pytest.raises(BadRowsError, match="row 1: row must be an object"):
        scorer.score([records[0], [1, 2]])


def test_the_export_directory_is_checked(criteo_export, tmp_path):
    _, export_dir, _ = criteo_export
    manifest = read_manifest(export_dir)
    assert manifest.model_format == "onnx" and manifest.exporter["opset"] >= 18
    assert set(manifest.sha256) == {"model.onnx", "encoder/encoder.json", "encoder/vocab.arrow"}
    assert [c.kind for c in manifest.columns] == ["dense"] * 13 + ["categorical"] * 26
    assert [(i.name, i.dtype) for i in manifest.inputs] == [("dense", "float32"),
                                                           ("ids", "int64")]
    assert len(manifest.inputs[0].columns) == 26  # 13 values and 13 missing indicators
    assert manifest.output == {"name": "score", "meaning": "probability"}
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(export_dir), str(copy)], check=True)
    model = copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 1
    model.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="model.onnx: damaged"):
        Scorer(copy)
    for sha, match in (({"../outside": "0" * 64}, "must name a file inside"),
                       ({}, "records no SHA-256 of model.onnx")):
        d = json.loads((export_dir / "serving.json").read_text())
        d["sha256"] = sha
        (copy / "serving.json").write_text(json.dumps(d))
        with pytest.raises(ModelFileError, match=match):
            read_manifest(copy)
    d = json.loads((export_dir / "serving.json").read_text())
    d["inputs"][1]["kind"] = "ragged_ids"
    (copy / "serving.json").write_text(json.dumps(d))
    with pytest.raises(ModelFileError, match="kind 'ragged_ids', which this crossrank"):
        read_manifest(copy)
    d["inputs"][1]["kind"] = "padded_ids"  # a known kind without its layout
    (copy / "serving.json").write_text(json.dumps(d))
    with pytest.raises(ModelFileError, match="'padded_ids' needs widths"):
        read_manifest(copy)


def test_pt2_export_loads_with_torch_export_and_matches_onnx(criteo_export, tmp_path):
    model_dir, export_dir, data = criteo_export
    assert main(["export", str(model_dir), "--format", "pt2", "--out",
                 str(tmp_path / "pt2")]) == 0
    assert main(["export", str(model_dir), "--out", str(tmp_path / "pt2")]) == 2  # not empty
    scorer = Scorer(export_dir)
    records = _records(model_dir, data)
    inputs = scorer.encode(pa.Table.from_pylist(records))  # the validation already typed them
    program = torch.export.load(tmp_path / "pt2" / "model.pt2").module()
    got = program(torch.from_numpy(inputs["dense"]), torch.from_numpy(inputs["ids"]))
    np.testing.assert_allclose(got.detach().numpy(), scorer.score(records), rtol=0, atol=1e-5)
    with pytest.raises(ModelFileError, match="holds a pt2 export"):
        Scorer(tmp_path / "pt2")


def test_a_model_without_dense_features_exports_and_scores(tmp_path):
    from crossrank.data import FeatureEncoder
    from crossrank.models import FeatureSchema

    table = TableSchema(label="y", dense=(), categorical=("u", "v"), task="regression")
    train = pa.table({"y": [1.0, 2.0, 3.0], "u": ["a", "b", "a"], "v": ["x", None, "y"]})
    encoder = FeatureEncoder(table).fit([train])
    model = build_model("dnn", FeatureSchema(categorical=("u", "v"), vocab_sizes=encoder.vocab_sizes,
                                             embedding_dim=3), {"deep_layers": [4]},
                        task="regression").eval()
    manifest = export_model(model, encoder, table, tmp_path / "e")
    assert [i.kind for i in manifest.inputs] == ["ids"]
    assert manifest.output["meaning"] == "value"
    rows = [{"u": "a", "v": "y"}, {"u": "zzz", "v": None}]
    batch = encoder.transform(pa.table({"u": ["a", "zzz"], "v": ["y", None]}))
    with torch.no_grad():
        expected = model(None, torch.from_numpy(batch.sparse)).numpy()
    np.testing.assert_allclose(Scorer(tmp_path / "e").score(rows), expected, rtol=0, atol=1e-5)


def test_criteo_sample_scores_equal_predict(shared_data, tmp_path):
    sample = shared_data / "criteo" / "criteo_sample200.csv"
    assert main(["train", "--data", str(sample), "--epochs", "1", "--no-progress", "--out",
                 str(tmp_path / "m"), "--model-option", "deep_layers=[8]", "--model-option",
                 "cross.rank=2", "--embedding-dim", "4"]) == 0
    assert main(["export", str(tmp_path / "m"), "--out", str(tmp_path / "e")]) == 0
    expected = _predicted(tmp_path / "m", sample, tmp_path / "scores.csv")
    np.testing.assert_allclose(Scorer(tmp_path / "e").score_file(sample), expected, rtol=0,
                               atol=PREDICT_ATOL)


def _genres_records(data):
    """The CSV's rows as dicts, genres the joined text (None where the field is empty)."""
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(data, convert_options=pa_csv.ConvertOptions(
        column_types={"city": pa.string(), "genres": pa.string()}, strings_can_be_null=True))
    return table.drop_columns(["label"]).to_pylist()


def test_multi_valued_scores_equal_crossrank_predict_as_lists_or_joined_text(genres_export,
                                                                             tmp_path):
    model_dir, export_dir, data = genres_export
    expected = _predicted(model_dir, data, tmp_path / "scores.csv")
    scorer = Scorer(export_dir, threads=1)
    joined = _genres_records(data)
    lists = [dict(r, genres=None if r["genres"] is None else r["genres"].split("|"))
             for r in joined]
    # missing values, empty elements, duplicates, more than max_length=4 elements, and
    # elements unseen in training (g8..g10) are all in the file
    assert any(r["genres"] is None for r in lists)
    assert any("" in r["genres"] for r in lists if r["genres"])
    assert any(len(r["genres"]) > 4 for r in lists if r["genres"])
    assert any(e in ("g8", "g9", "g10") for r in lists if r["genres"] for e in r["genres"])
    assert expected.std() > 1e-3  # the comparison is not between constants
    mixed = [lists[i] if i % 2 else joined[i] for i in range(len(joined))]
    list_table = pa.Table.from_pylist(lists)  # a list<string> column, as Parquet gives one
    assert list_table.schema.field("genres").type == pa.list_(pa.string())
    for got in (scorer.score_file(data), scorer.score(joined), scorer.score(lists),
                scorer.score(mixed), scorer.score(pa.Table.from_pylist(joined)),
                scorer.score(list_table)):
        np.testing.assert_allclose(got, expected, rtol=0, atol=PREDICT_ATOL)
    for i in range(5):  # one row alone scores as it does in a batch, an empty list as missing
        np.testing.assert_allclose(scorer.score(lists[i:i + 1]), expected[i:i + 1], rtol=0,
                                   atol=PREDICT_ATOL)
    missing = [dict(lists[0], genres=v) for v in (None, [], "", [""], [None])]
    np.testing.assert_array_equal(scorer.score(missing), scorer.score(missing[:1] * 5))
    # integers are elements as their decimal text, as the readers make them
    np.testing.assert_array_equal(scorer.score([dict(lists[0], genres=[7, "x"])]),
                                  scorer.score([dict(lists[0], genres="7|x")]))


def test_a_multi_valued_manifest_lays_out_the_ids(genres_export):
    _, export_dir, _ = genres_export
    manifest = read_manifest(export_dir)
    assert [(c.name, c.kind) for c in manifest.columns] == [
        ("price", "dense"), ("city", "categorical"), ("genres", "multi_valued")]
    assert manifest.columns[2].multi_valued == {"separator": "|", "pooling": "mean",
                                                "max_length": 4, "keep": "last"}
    ids = manifest.inputs[1]
    assert (ids.name, ids.kind, ids.columns, ids.widths) == ("ids", "padded_ids",
                                                              ("city", "genres"), (1, 4))
    scorer = Scorer(export_dir)
    assert scorer.session.get_inputs()[1].name == "ids"
    assert scorer.session.get_inputs()[1].shape[1] == 5  # 1 + 4 slots
    encoded = scorer.encode(pa.table({"price": [1.0], "city": ["c1"],
                                      "genres": ["g1|g2|g3|g4|g5"]}))["ids"]
    vocab = scorer.encoder.lists._vocabs["genres"].values.to_pylist()
    assert [vocab[i - 2] for i in encoded[0, 1:]] == ["g2", "g3", "g4", "g5"]  # the last 4


@pytest.mark.parametrize("value, detail", [
    ([["a"]], "must be a list of texts and integers"),
    ([1.5], "must be a list of texts and integers"),
    ({"a": 1}, "must be a list of texts and integers"),
    (["g1"] * 10_001, "more than 10,000 elements"),
    ("|".join(["g1"] * 10_001), "more than 10,000 elements"),
])
def test_a_bad_multi_valued_value_is_named_by_row_and_column(genres_export, value, detail):
    _, export_dir, data = genres_export
    records = _genres_records(data)[:4]
    records[2]["genres"] = value
    with pytest.raises(BadRowsError, match=detail) as caught:
        Scorer(export_dir).score(records)
    assert (caught.value.kind, caught.value.row, caught.value.column) == ("bad_value", 2,
                                                                          "genres")
