"""``crossrank explain`` on saved model directories (the compat_v1 fixture): a report for a
model with a cross network, one line and exit 2 for a model without one."""

from pathlib import Path

import pytest

from crossrank.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "compat_v1"


@pytest.mark.parametrize("name, data", [("dcn_full", False), ("dcn_mix", True),
                                        ("dlrm_dcn", False)])
def test_explain_writes_the_report(name, data, tmp_path, capsys):
    model_dir = FIXTURES / name
    args = ["explain", str(model_dir), "--out", str(tmp_path), "--top-k", "3"]
    if data:  # a mixture weighs its experts by their gate shares on the data
        args += ["--data", str(model_dir / "input.csv")]
    assert main(args) == 0
    assert "Field-pair importance" in capsys.readouterr().out
    assert (tmp_path / "importance.json").is_file() and (tmp_path / "importance.png").is_file()


@pytest.mark.parametrize("name, description", [("dnn_regression", "DNN"),
                                               ("dlrm_dot", "DLRM (dot interaction)")])
@pytest.mark.parametrize("data", [False, True])
def test_explain_of_a_model_without_a_cross_network_is_one_line(name, description, data,
                                                                 tmp_path, capsys):
    model_dir = FIXTURES / name
    args = ["explain", str(model_dir), "--out", str(tmp_path / "out")]
    if data:
        args += ["--data", str(model_dir / "input.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    family = name.split("_")[0]
    assert err.startswith(f"crossrank explain: error: model '{family}' has no cross network to "
                          f"explain ({description})")
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()
