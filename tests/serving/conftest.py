import pytest

from crossrank.cli import main
from crossrank.data import write_default_synthetic


@pytest.fixture(scope="session")
def criteo_export(tmp_path_factory):
    """(model dir, ONNX export dir, test TSV): a small DCN trained on synthetic Criteo rows
    (no header, label first) and exported with ``crossrank export``."""
    root = tmp_path_factory.mktemp("serving")
    write_default_synthetic(root / "train.tsv", 2000, seed=1)
    write_default_synthetic(root / "test.tsv", 500, seed=2)
    assert main(["train", "--data", str(root / "train.tsv"), "--epochs", "1", "--no-progress",
                 "--out", str(root / "m"), "--model-option", "deep_layers=[8]",
                 "--model-option", "cross.rank=2", "--embedding-dim", "4",
                 "--missing-indicator", "--min-count", "2"]) == 0
    assert main(["export", str(root / "m"), "--out", str(root / "onnx")]) == 0
    return root / "m", root / "onnx", root / "test.tsv"


def _write_genres_csv(path, rows, seed, genres):
    """label,price,city,genres rows; genres ``|``-joined with duplicates, empty elements, empty
    and missing values; the label leans on genre g0 and the price."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = ["label,price,city,genres"]
    for i in range(rows):
        picked = list(rng.choice(genres, size=int(rng.integers(0, 7))))
        if i % 11 == 3:
            picked += picked[:1] + [""]  # a duplicate and an empty element (a||b)
        value = "|".join(picked) if i % 13 != 5 else ""  # "": a missing value
        label = int(rng.random() < (0.7 if "g0" in picked else 0.3))
        price = "" if i % 17 == 2 else f"{rng.normal(3, 1):.3f}"
        lines.append(f"{label},{price},c{int(rng.integers(0, 6))},{value}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def genres_export(tmp_path_factory):
    """(model dir, ONNX export dir, test CSV): a small DCN with a mean-pooled multi-valued
    ``genres`` field (its last 4 elements kept) trained on a CSV and exported; the test CSV
    holds elements and cities unseen in training."""
    root = tmp_path_factory.mktemp("genres")
    _write_genres_csv(root / "train.csv", 600, 1, [f"g{i}" for i in range(8)])
    _write_genres_csv(root / "test.csv", 150, 2, [f"g{i}" for i in range(11)])
    assert main(["train", "--data", str(root / "train.csv"), "--label", "label", "--dense",
                 "price", "--categorical", "city", "--multi-valued",
                 "genres:|:pooling=mean:max_length=4:keep=last", "--epochs", "1",
                 "--no-progress", "--out", str(root / "m"), "--model-option",
                 "deep_layers=[8]", "--model-option", "cross.rank=2", "--embedding-dim",
                 "4"]) == 0
    assert main(["export", str(root / "m"), "--out", str(root / "onnx")]) == 0
    return root / "m", root / "onnx", root / "test.csv"
