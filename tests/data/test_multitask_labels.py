"""Several labels in a table schema: the JSON round trip, reading (a later label may be
missing, a wrong one is a bad row) and the (R, T) labels the encoder and cache carry."""

import numpy as np
import pytest

from crossrank.data import TableSchema, read_table
from crossrank.data.config import SchemaConfig
from crossrank.errors import BadInputError, ConfigError

SCHEMA = TableSchema(label="click", dense=("x",), categorical=("c",), extra_labels=("buy",),
                     extra_tasks=("binary",))


def test_the_labels_round_trip_through_json_as_lists():
    d = SCHEMA.to_dict()
    assert d["label"] == ["click", "buy"] and d["task"] == ["binary", "binary"]
    assert TableSchema.from_dict(d) == SCHEMA
    assert SCHEMA.column_names == ("click", "buy", "x", "c")
    assert SCHEMA.without_label().labels == ()
    one = TableSchema(label="click", dense=("x",), categorical=())
    assert one.to_dict()["label"] == "click" and one.tasks == ("binary",)  # as before
    with pytest.raises(ValueError, match="appears twice"):
        TableSchema(label="y", dense=("x",), categorical=(), extra_labels=("x",),
                    extra_tasks=("binary",))


def test_a_later_label_may_be_missing_but_not_wrong(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("click,buy,x,c\n1,1,0.5,a\n0,,0.1,b\n1,0,0.2,a\n")
    table = read_table(path, fmt="csv", schema=SCHEMA)
    assert table.column("buy").to_pylist() == [1.0, None, 0.0]
    path.write_text("click,buy,x,c\n1,2,0.5,a\n")
    with pytest.raises(BadInputError, match="label must be 0 or 1") as err:
        read_table(path, fmt="csv", schema=SCHEMA)
    assert err.value.column == "buy"
    path.write_text("click,buy,x,c\n,1,0.5,a\n")  # the first label is required, as always
    with pytest.raises(BadInputError, match="missing label"):
        read_table(path, fmt="csv", schema=SCHEMA)


def test_the_encoder_gives_one_label_column_per_task_with_nan_where_missing(tmp_path):
    from crossrank.data import FeatureEncoder

    path = tmp_path / "d.csv"
    path.write_text("click,buy,x,c\n1,1,0.5,a\n0,,0.1,b\n")
    table = read_table(path, fmt="csv", schema=SCHEMA)
    batch = FeatureEncoder(SCHEMA).fit([table]).transform(table)
    np.testing.assert_array_equal(batch.label, np.array([[1, 1], [0, np.nan]], np.float32))


@pytest.mark.parametrize("options, message", [
    ({"label": "a,a"}, "distinct columns"),
    ({"label": "a,b", "task": "binary,binary,binary"}, "3 tasks"),
    ({"label": "a,b", "task": "binary,ranking"}, "must be one of"),
])
def test_bad_label_and_task_lists_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message) as err:
        SchemaConfig(**options)
    assert "\n" not in str(err.value)
