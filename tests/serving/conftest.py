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
