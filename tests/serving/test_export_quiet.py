"""`crossrank export` prints its one result line, not the ONNX exporter's warnings about
torchvision ops no crossrank model uses (torchvision is not a dependency)."""

import logging

from crossrank.cli import main

REGISTRY = "torch.onnx._internal.exporter._registration"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_the_export_logs_no_torchvision_warning(criteo_export, tmp_path, capsys):
    model_dir, _, _ = criteo_export
    logger = logging.getLogger(REGISTRY)
    level, records = logger.level, _Records()
    logger.addHandler(records)
    try:
        assert main(["export", str(model_dir), "--out", str(tmp_path / "onnx")]) == 0
    finally:
        logger.removeHandler(records)
    assert not [m for m in records.messages if "torchvision" in m]
    assert capsys.readouterr().out.startswith(f"exported {model_dir} to ")
    assert logger.level == level  # left as it was
