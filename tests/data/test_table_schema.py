"""TableSchema: validation, JSON round trip, Criteo layout and inference."""

from __future__ import annotations

import json

import pytest

from crossrank.data import (
    TableSchema,
    criteo_schema,
    infer_schema,
    load_schema,
    save_schema,
)


def test_criteo_schema_layout():
    s = criteo_schema()
    assert s.column_names == ("label", *(f"I{i}" for i in range(1, 14)),
                              *(f"C{i}" for i in range(1, 27)))
    assert s.task == "binary" and s.id_column is None
    assert criteo_schema(with_label=False).column_names == s.column_names[1:]
    assert s.without_label() == criteo_schema(with_label=False)


def test_lists_become_tuples_and_order_is_id_label_dense_categorical():
    s = TableSchema(label="y", dense=["a"], categorical=["c", "d"], id_column="rid")
    assert s.dense == ("a",) and s.categorical == ("c", "d")
    assert s.column_names == ("rid", "y", "a", "c", "d")
    assert s.feature_names == ("a", "c", "d")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dense": ("a", "a")}, ValueError, "'a' appears twice"),
        ({"label": "a"}, ValueError, r"'a' appears twice in the schema \(as label and as dense\)"),
        ({"id_column": "c"}, ValueError, "'c' appears twice"),
        ({"dense": (), "categorical": ()}, ValueError, "at least one"),
        ({"dense": "a"}, TypeError, "dense must be a sequence"),
        ({"categorical": ("c", 3)}, TypeError, "categorical must contain"),
        ({"label": ""}, TypeError, "label"),
        ({"task": "multiclass"}, ValueError, "task must be one of"),
    ],
)
def test_invalid_schemas_raise(kwargs, error, match):
    base = {"label": "y", "dense": ("a",), "categorical": ("c",)}
    with pytest.raises(error, match=match):
        TableSchema(**{**base, **kwargs})


def test_dict_and_file_round_trip(tmp_path):
    s = TableSchema(label="r", dense=("x",), categorical=("u", "v"), id_column="i",
                    task="regression")
    assert TableSchema.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    save_schema(s, tmp_path / "schema.json")
    assert load_schema(tmp_path / "schema.json") == s
    with pytest.raises(ValueError, match=r"unknown schema keys \['labels'\]"):
        TableSchema.from_dict({**s.to_dict(), "labels": "r"})
    with pytest.raises(ValueError, match="missing required keys"):
        TableSchema.from_dict({"label": "r", "dense": []})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_schema(tmp_path / "bad.json")


def test_infer_criteo_from_the_field_count(tmp_path):
    row = "\t".join(["1"] * 14 + ["ab"] * 26)
    (tmp_path / "train.tsv").write_text(row + "\n")
    assert infer_schema(tmp_path / "train.tsv", "criteo").schema == criteo_schema()
    (tmp_path / "test.tsv").write_text(row.split("\t", 1)[1] + "\n")
    assert infer_schema(tmp_path / "test.tsv", "criteo").schema == criteo_schema(with_label=False)
    (tmp_path / "odd.tsv").write_text("1\t2\t3\n")
    with pytest.raises(ValueError, match="line 1: 3 tab-separated fields; Criteo has 40"):
        infer_schema(tmp_path / "odd.tsv", "criteo")
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "part-0.tsv").write_text(row + "\n")
    assert infer_schema(shards, "criteo").schema == criteo_schema()
