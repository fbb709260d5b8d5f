"""Schema inference from a sample (CSV, Parquet, Criteo), its report, overrides, errors, and the
column check for prediction."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from crossrank.data import (
    BadInputError,
    InferredSchema,
    TableSchema,
    check_columns,
    criteo_schema,
    infer_schema,
)
from crossrank.data.column_kind import MIN_FILL

N = 400
# Built so that each column meets exactly one step of the rule (see column_kind's docstring).
COLUMNS = {
    "click": lambda i: str(i % 2),                       # label
    "rid": lambda i: f"r{i}",                             # id column
    "city": lambda i: "" if i % 10 == 0 else ["paris", "rome", "oslo"][i % 3],  # text
    "member": lambda i: ["true", "false"][i % 2],         # true/false
    "price": lambda i: repr(i * 0.25 + 0.1),              # floats
    "user_id": lambda i: str(i * 7919 % 100003),          # integers named like an id
    "item": lambda i: str(i % 50),                        # fill 0..49, 8 rows each
    "visits": lambda i: str(i * i % 10007),               # integers spread thinly: counts
    "shop": lambda i: f"{i % 20:03d}",                    # leading zeros: codes
    "ts": lambda i: str(1_600_000_000 + 37 * i),          # timestamps
    "hour": lambda i: str(i % 24),                        # fill 0..23
    "seq": lambda i: str(i),                              # fills its range, one row each
    "empty": lambda i: "",                                # all missing
    "note": lambda i: f"free text {i}",                   # to exclude
}
DENSE = ("price", "visits", "ts", "seq")
CATEGORICAL = ("city", "member", "user_id", "item", "shop", "hour", "empty", "note")


def _write_csv(path, rows=N, columns=COLUMNS):
    lines = [",".join(columns)] + [",".join(f(i) for f in columns.values()) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _parquet_table(rows=N):
    text = {name: [f(i) for i in range(rows)] for name, f in COLUMNS.items()}
    return pa.table({
        "click": pa.array([int(v) for v in text["click"]], pa.int64()),
        "rid": text["rid"],
        "city": pa.array([v or None for v in text["city"]], pa.string()),
        "member": pa.array([v == "true" for v in text["member"]]),
        "price": pa.array([float(v) for v in text["price"]]),
        "user_id": pa.array([int(v) for v in text["user_id"]], pa.int64()),
        "item": pa.array([int(v) for v in text["item"]], pa.int32()),
        "visits": pa.array([int(v) for v in text["visits"]], pa.int64()),
        "shop": text["shop"],
        "ts": pa.array([int(v) for v in text["ts"]], pa.int64()),
        "hour": pa.array([int(v) for v in text["hour"]], pa.uint8()),
        "seq": pa.array(range(rows), pa.int64()),
        "empty": pa.nulls(rows),
        "when": pa.array(range(rows), pa.timestamp("ms")),
    })


def test_csv_kinds_follow_the_rule(tmp_path):
    found = infer_schema(_write_csv(tmp_path / "a.csv"), "csv", label="click", id_column="rid")
    assert found.schema == TableSchema(label="click", dense=DENSE, categorical=CATEGORICAL,
                                       id_column="rid")
    kinds = {c.name: (c.kind, c.arrow_type) for c in found.columns}
    assert kinds == {
        "click": ("label", "int64"), "rid": ("id", "string"), "city": ("categorical", "string"),
        "member": ("categorical", "bool"), "price": ("dense", "double"),
        "user_id": ("categorical", "int64"), "item": ("categorical", "int64"),
        "visits": ("dense", "int64"), "shop": ("categorical", "int64"),
        "ts": ("dense", "int64"), "hour": ("categorical", "int64"), "seq": ("dense", "int64"),
        "empty": ("categorical", "null"), "note": ("categorical", "string"),
    }
    why = {c.name: c.reason for c in found.columns}
    assert why["user_id"] == "integers named like an id ('id' in 'user_id')"
    assert why["shop"] == "integer codes written with a leading zero, e.g. '000'"
    assert why["item"] == "integers fill 100% of 0..49, 8 rows per value: ids or codes"
    assert why["seq"].startswith("integers, 1.0 rows per value")
    assert why["visits"].startswith("integers fill ") and "counts, amounts or times" in why["visits"]
    assert why["city"] == "text, e.g. 'rome'" and why["member"] == "true/false values"
    assert why["empty"].startswith("no value in the sample")


def test_parquet_kinds_follow_the_rule(tmp_path):
    pq.write_table(_parquet_table(), tmp_path / "a.parquet")
    found = infer_schema(tmp_path / "a.parquet", "parquet", label="click", id_column="rid")
    # Parquet text stays text (shop's leading zeros are a string's), timestamps are unsupported.
    assert found.schema.dense == DENSE
    assert found.schema.categorical == ("city", "member", "user_id", "item", "shop", "hour",
                                        "empty")
    when = found.column("when")
    assert (when.kind, when.arrow_type) == ("unsupported", "timestamp[ms]")
    assert found.column("hour").arrow_type == "uint8"
    assert found.column("empty").arrow_type == "null"
    assert found.column("shop").reason == "text"


def test_the_sample_fills_the_report(tmp_path):
    found = infer_schema(_write_csv(tmp_path / "a.csv"), "csv", label="click", id_column="rid")
    city, empty, item = found.column("city"), found.column("empty"), found.column("item")
    assert (city.distinct, city.missing) == (3, 0.1)
    assert (empty.distinct, empty.missing) == (0, 1.0)
    assert (item.distinct, item.missing) == (50, 0.0)
    assert found.sample_rows == N and found.file == str(tmp_path / "a.csv")
    lines = found.format_table().splitlines()
    assert len(lines) == 2 + len(COLUMNS)
    assert lines[0] == (f"{tmp_path / 'a.csv'}, first 400 rows: label 'click', id 'rid', "
                        "4 dense, 8 categorical")
    assert lines[1].split() == ["column", "kind", "type", "distinct", "missing", "why"]
    assert lines[3].split()[:5] == ["rid", "id", "string", "400", "0.0%"]
    saved = json.loads(json.dumps(found.to_dict()))
    assert InferredSchema.from_dict(saved) == found
    with pytest.raises(ValueError, match=r"unknown inferred schema keys \['extra'\]"):
        InferredSchema.from_dict({**saved, "extra": 1})
    few = infer_schema(tmp_path / "a.csv", "csv", label="click", sample_rows=100)
    assert few.sample_rows == 100 and few.column("seq").distinct == 100


def test_overrides_and_only_named_columns(tmp_path):
    path = _write_csv(tmp_path / "a.csv")
    found = infer_schema(path, "csv", label="click", dense=["item"], categorical=["visits"],
                         exclude=["note", "rid"])
    assert found.schema.dense == ("price", "item", "ts", "seq")
    assert "visits" in found.schema.categorical and "note" not in found.schema.categorical
    assert found.column("item").reason.startswith("named in dense= (the rule says categorical")
    assert found.column("visits").reason.startswith("named in categorical= (the rule says dense")
    assert found.column("note").kind == "excluded"
    only = infer_schema(path, "csv", label="click", dense=["price"], categorical=["city"],
                        infer_rest=False)
    assert only.schema == TableSchema(label="click", dense=("price",), categorical=("city",))
    assert {c.name for c in only.columns if c.kind == "excluded"} == set(COLUMNS) - {
        "click", "price", "city"}
    unlabelled = infer_schema(path, "csv", label=None, exclude=["click"])
    assert unlabelled.schema.label is None and "click" not in unlabelled.schema.feature_names


def test_overrides_the_readers_cannot_read_raise(tmp_path):
    pq.write_table(_parquet_table(), tmp_path / "a.parquet")
    with pytest.raises(BadInputError, match=r"categorical column 'price' holds floats \(double\)"):
        infer_schema(tmp_path / "a.parquet", "parquet", label="click", categorical=["price"])
    with pytest.raises(BadInputError, match=r"dense column 'when' has type timestamp\[ms\]"):
        infer_schema(tmp_path / "a.parquet", "parquet", label="click", dense=["when"])
    # In a text file a float column may be categorical: its values are read as text.
    _write_csv(tmp_path / "a.csv")
    found = infer_schema(tmp_path / "a.csv", "csv", label="click", categorical=["price"])
    assert "price" in found.schema.categorical


def test_absent_columns_are_one_line_errors_with_the_nearest_name(tmp_path):
    path = _write_csv(tmp_path / "a.csv")
    with pytest.raises(BadInputError) as err:
        infer_schema(path, "csv", label="clicked")
    message = str(err.value)
    assert len(message.splitlines()) == 1 and err.value.reason == "bad_file"
    assert message.startswith(f"{path}: not in the file: label 'clicked' (did you mean 'click'?)")
    assert message.endswith("its columns are ['click', 'rid', 'city', 'member', 'price', "
                            "'user_id', 'item', 'visits', 'shop', 'ts', 'hour', 'seq', 'empty', "
                            "'note']")
    with pytest.raises(BadInputError, match=r"id column 'RID' \(did you mean 'rid'\?\)"):
        infer_schema(path, "csv", label="click", id_column="RID")
    with pytest.raises(BadInputError, match=r"dense 'prise' \(did you mean 'price'\?\), "
                                            r"categorical 'zzz';"):
        infer_schema(path, "csv", label="click", dense=["prise"], categorical=["zzz"])
    pq.write_table(_parquet_table(), tmp_path / "a.parquet")
    with pytest.raises(BadInputError, match=r"exclude 'wen' \(did you mean 'when'\?\)"):
        infer_schema(tmp_path / "a.parquet", "parquet", label="click", exclude=["wen"])


def test_bad_arguments_name_themselves(tmp_path):
    path = _write_csv(tmp_path / "a.csv")
    with pytest.raises(ValueError, match="column 'price' is named twice"):
        infer_schema(path, "csv", label="click", dense=["price"], categorical=["price"])
    with pytest.raises(ValueError, match="column 'click' is named twice"):
        infer_schema(path, "csv", label="click", exclude=["click"])
    with pytest.raises(TypeError, match="dense must be a sequence of column names, got 'price'"):
        infer_schema(path, "csv", label="click", dense="price")
    with pytest.raises(ValueError, match="sample_rows must be a positive int, got 0"):
        infer_schema(path, "csv", label="click", sample_rows=0)
    with pytest.raises(ValueError, match="fmt must be one of"):
        infer_schema(path, "json")
    with pytest.raises(ValueError, match="task must be one of"):
        infer_schema(path, "csv", label="click", task="ranking")
    (tmp_path / "c.tsv").write_text("\t".join(["1"] * 14 + ["ab"] * 26) + "\n")
    with pytest.raises(ValueError, match="the criteo format has a fixed layout"):
        infer_schema(tmp_path / "c.tsv", "criteo", dense=["I1"])


def test_no_features_left_and_empty_files(tmp_path):
    (tmp_path / "two.csv").write_text("rid,click\nr1,1\nr2,0\n")
    with pytest.raises(BadInputError, match="no feature columns left: 'rid' \\(id\\), "
                                            "'click' \\(label\\)$"):
        infer_schema(tmp_path / "two.csv", "csv", label="click", id_column="rid")
    (tmp_path / "head.csv").write_text("click,city\n")
    with pytest.raises(BadInputError, match="no data rows to infer a schema from") as err:
        infer_schema(tmp_path / "head.csv", "csv", label="click")
    assert err.value.reason == "empty_file"
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(BadInputError, match="no header"):
        infer_schema(tmp_path / "blank.csv", "csv", label="click")
    (tmp_path / "twice.csv").write_text("click,a,b,a\n1,2,3,4\n")
    with pytest.raises(BadInputError, match=r"column\(s\) \['a'\] appear more than once"):
        infer_schema(tmp_path / "twice.csv", "csv", label="click")
    # Prediction reads only the schema's columns: a repeated other column is no obstacle.
    assert check_columns(tmp_path / "twice.csv", "csv",
                         TableSchema(label="click", dense=("b",), categorical=())) is True
    with pytest.raises(BadInputError, match=r"\['a'\] appear more than once"):
        check_columns(tmp_path / "twice.csv", "csv",
                      TableSchema(label="click", dense=("a",), categorical=()))


def test_compressed_csv_and_shards(tmp_path):
    text = _write_csv(tmp_path / "a.csv").read_bytes()
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "part-0.csv.gz").write_bytes(gzip.compress(text))
    found = infer_schema(shards, "csv", label="click", id_column="rid")
    assert found.schema.dense == DENSE and found.file == str(shards / "part-0.csv.gz")


def test_check_columns_names_the_file_and_every_missing_column(tmp_path):
    schema = TableSchema(label="click", dense=("price",), categorical=("city", "item"),
                         id_column="rid")
    shards = tmp_path / "shards"
    shards.mkdir()
    _write_csv(shards / "a.csv")
    assert check_columns(shards, "csv", schema) is True
    cols = {k: v for k, v in COLUMNS.items() if k not in ("click", "city", "item")}
    _write_csv(shards / "b.csv", rows=3, columns=cols)
    assert check_columns(shards / "a.csv", "csv", schema, need_label=False) is True
    with pytest.raises(BadInputError) as err:
        check_columns(shards, "csv", schema, need_label=False)
    assert str(err.value).startswith(f"{shards / 'b.csv'}: lacks categorical 'city', "
                                     "categorical 'item'; it has columns ['rid', 'member',")
    with pytest.raises(BadInputError, match=r"lacks label 'click', categorical 'city'"):
        check_columns(shards, "csv", schema)
    (shards / "b.csv").unlink()
    (shards / "c.csv").write_text("rid,price,city,item\nr1,1.5,x,3\n")
    assert check_columns(shards, "csv", schema, need_label=False) is False
    pq.write_table(pa.table({"rid": ["r"], "price": [1.0], "City": ["x"], "item": [1]}),
                   tmp_path / "p.parquet")
    with pytest.raises(BadInputError, match=r"lacks categorical 'city' \(did you mean 'City'\?\)"):
        check_columns(tmp_path / "p.parquet", "parquet", schema, need_label=False)
    row = "\t".join(["1"] * 14 + ["ab"] * 26)
    (tmp_path / "train.tsv").write_text(row + "\n")
    (tmp_path / "test.tsv").write_text(row.split("\t", 1)[1] + "\n")
    assert check_columns(tmp_path / "train.tsv", "criteo", criteo_schema()) is True
    assert check_columns(tmp_path / "test.tsv", "criteo", criteo_schema(), need_label=False) is False
    with pytest.raises(BadInputError, match="39 tab-separated fields: 13 dense and 26 categorical"):
        check_columns(tmp_path / "test.tsv", "criteo", criteo_schema())
    small = TableSchema(label="label", dense=("n",), categorical=("c",))
    with pytest.raises(BadInputError, match="40 tab-separated fields; the schema .* expects 3"):
        check_columns(tmp_path / "train.tsv", "criteo", small)


def test_movielens_flattened_to_csv(shared_data, tmp_path):
    ml = shared_data / "movielens-100k"
    ratings = pa_csv.read_csv(
        ml / "u.data", read_options=pa_csv.ReadOptions(
            column_names=["user_id", "movie_id", "rating", "timestamp"]),
        parse_options=pa_csv.ParseOptions(delimiter="\t"))
    users = pa_csv.read_csv(
        ml / "u.user", read_options=pa_csv.ReadOptions(
            column_names=["user_id", "age", "gender", "occupation", "zip_code"],
            encoding="latin-1"),
        parse_options=pa_csv.ParseOptions(delimiter="|"),
        convert_options=pa_csv.ConvertOptions(column_types={"zip_code": pa.string()}))
    table = ratings.join(users, "user_id").sort_by([("timestamp", "ascending")])
    pa_csv.write_csv(table, tmp_path / "movielens.csv")
    found = infer_schema(tmp_path / "movielens.csv", "csv", label="rating", task="regression")
    assert found.sample_rows == 100_000
    # Ids by their names, age by filling 61 of 7..73, text columns as text; the timestamps
    # (49,282 distinct over 7 months of seconds) are the one dense feature.
    assert found.schema == TableSchema(
        label="rating", dense=("timestamp",),
        categorical=("user_id", "movie_id", "age", "gender", "occupation", "zip_code"),
        task="regression")
    age = found.column("age")
    assert (age.distinct, age.reason) == (
        61, "integers fill 91% of 7..73, 1639 rows per value: ids or codes")
    assert age.distinct / (73 - 7 + 1) >= MIN_FILL
    assert found.column("zip_code").reason.startswith("text, e.g.")
    assert (found.column("user_id").distinct, found.column("movie_id").distinct) == (943, 1682)


def test_criteo_sample_csv(shared_data):
    found = infer_schema(shared_data / "criteo" / "criteo_sample200.csv", "csv")
    assert found.schema == criteo_schema()
    # I2 is written as integers (68 values in -1..3001): a count by the fill rule.
    assert found.column("I2").arrow_type == "int64"
    assert found.column("I2").reason == "integers fill 2.3% of -1..3001: counts, amounts or times"
    assert {found.column(f"I{i}").arrow_type for i in (1, 3, 13)} == {"double"}


def test_criteo_tsv_keeps_its_layout(shared_data):
    found = infer_schema(shared_data / "criteo" / "criteo_kaggle_head10k.tsv", "criteo")
    assert found.schema == criteo_schema() and found.sample_rows == 10_000
    assert [c.kind for c in found.columns] == ["label"] + ["dense"] * 13 + ["categorical"] * 26
    assert found.column("C3").missing == pytest.approx(357 / 10_000)
