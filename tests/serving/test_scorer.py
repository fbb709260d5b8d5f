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


def test_the_scoring_path_imports_no_torch(criteo_export):
    """In a process where importing torch raises, the Scorer scores; torch stays unloaded."""
    model_dir, export_dir, data = criteo_export
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
    d["inputs"][1]["kind"] = "padded_ids"
    (copy / "serving.json").write_text(json.dumps(d))
    with pytest.raises(ModelFileError, match="kind 'padded_ids'"):
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
