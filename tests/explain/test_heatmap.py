"""Heatmaps are real images of the data, and explain_model writes a complete report."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from crossrank.explain import explain_model, field_pair_importance, heatmap_size, plot_field_importance
from crossrank.layers import CrossNet
from crossrank.models import DCN, CrossConfig, DCNConfig, FeatureSchema

VIRIDIS_LOW = np.array([0.267, 0.005, 0.329])  # viridis(0)
VIRIDIS_HIGH = np.array([0.993, 0.906, 0.144])  # viridis(1)


def _read_png(path):
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)  # (H, W, 4) floats in [0, 1]


def _has_colour(image, rgb, tol=0.02):
    return bool((np.abs(image[..., :3] - rgb).max(axis=-1) < tol).any())


def _criteo_shaped_model():
    schema = FeatureSchema(dense=tuple(f"I{i}" for i in range(1, 14)),
                           categorical=tuple(f"C{i}" for i in range(1, 27)),
                           vocab_sizes=(10,) * 26, embedding_dim=2)
    torch.manual_seed(0)
    return DCN(schema, DCNConfig(cross=CrossConfig(num_layers=2, rank=4), deep_layers=(8,)))


@pytest.mark.parametrize("num_fields", [5, 39])
def test_heatmap_png_has_the_expected_size_and_shows_the_data(tmp_path, num_fields):
    net = CrossNet(num_fields, 1, use_bias=False)
    with torch.no_grad():
        net.weight.zero_()
        net.weight[0, 0, num_fields - 1] = 3.0  # one hot cell: the colour scale's top
    imp = field_pair_importance(net)
    path = plot_field_importance(imp, tmp_path / "sub" / "h.png", title="hand-set weights")
    image = _read_png(path)
    width, height = heatmap_size(num_fields)
    assert image.shape == (round(height * 100), round(width * 100), 4)
    assert image[..., :3].std() > 0.05
    assert len(np.unique(image[..., :3].reshape(-1, 3).round(2), axis=0)) > 20
    # The zero cells are drawn in the colormap's bottom colour, the 3.0 cell in its top.
    assert _has_colour(image, VIRIDIS_LOW) and _has_colour(image, VIRIDIS_HIGH)


def _count(image, rgb, tol=0.02):
    return int((np.abs(image[..., :3] - rgb).max(axis=-1) < tol).sum())


def test_heatmap_colours_follow_the_values(tmp_path):
    """All zeros: cells in the bottom colour, the top colour only in the colorbar. One cell
    set: about one cell's area (1/25 of the axes) turns to the top colour."""
    net = CrossNet(5, 1, use_bias=False)
    with torch.no_grad():
        net.weight.zero_()
    zero = _read_png(plot_field_importance(field_pair_importance(net), tmp_path / "z.png"))
    with torch.no_grad():
        net.weight[0, 2, 3] = 1.0
    one = _read_png(plot_field_importance(field_pair_importance(net), tmp_path / "o.png"))
    pixels = zero.shape[0] * zero.shape[1]
    assert _count(zero, VIRIDIS_LOW) > 0.3 * pixels
    cell = (100 * 4.5 / 5) ** 2  # one cell of a 4.5-inch axes at 100 dpi, in pixels
    assert _count(one, VIRIDIS_HIGH) - _count(zero, VIRIDIS_HIGH) > 0.5 * cell
    assert _count(zero, VIRIDIS_LOW) - _count(one, VIRIDIS_LOW) > 0.5 * cell


def test_heatmap_rejects_bad_arguments(tmp_path):
    imp = field_pair_importance(CrossNet(3, 2))
    with pytest.raises(ValueError, match="layer"):
        plot_field_importance(imp, tmp_path / "x.png", layer=2)
    with pytest.raises(ValueError, match="dpi"):
        plot_field_importance(imp, tmp_path / "x.png", dpi=0)


def test_explain_model_writes_json_table_and_one_heatmap_per_layer(tmp_path):
    model = _criteo_shaped_model()
    report = explain_model(model, out_dir=tmp_path / "out", top_k=5, title="DCN, Criteo sample")
    names = sorted(p.rsplit("/", 1)[-1] for p in report["paths"])
    assert names == ["importance.json", "importance.png", "importance.txt",
                     "importance_layer0.png", "importance_layer1.png"]
    data = json.loads((tmp_path / "out" / "importance.json").read_text())
    assert len(data["fields"]) == 39 and len(data["top_pairs"]) == 5
    assert data["top_pairs"] == report["top_pairs"]
    assert report["table"].splitlines()[-1].startswith("   5  ")
    assert "measure='rms'" in report["table"]  # widths 1 and 2 are mixed: the table says so
    assert report["polynomial"] is None
    json.dumps(report)
    for png in report["heatmaps"]:
        assert _read_png(png).shape[:2] == (round(heatmap_size(39)[1] * 100),
                                            round(heatmap_size(39)[0] * 100))


def test_explain_model_adds_the_polynomial_of_a_small_dense_model(tmp_path):
    torch.manual_seed(0)
    model = DCN(FeatureSchema(dense=("a", "b", "c")),
                DCNConfig(structure="cross_only", cross=CrossConfig(num_layers=1)), task="regression")
    report = explain_model(model, out_dir=tmp_path, measure="rms")
    assert (tmp_path / "polynomial.txt").exists() and " a b" in report["polynomial"]
    assert "RMS" in report["table"]


def test_explain_model_mixture_needs_x0(tmp_path):
    schema = FeatureSchema(categorical=("u", "v"), vocab_sizes=(4, 4), embedding_dim=2)
    model = DCN(schema, DCNConfig(cross=CrossConfig(num_layers=1, rank=1, num_experts=2),
                                  deep_layers=(4,)))
    with pytest.raises(ValueError, match="x0 is required"):
        explain_model(model, out_dir=tmp_path)
    with torch.no_grad():
        x0 = model.cross_input(None, torch.tensor([[0, 1], [2, 3], [3, 0]]))
    report = explain_model(model, out_dir=tmp_path, x0=x0)
    assert "gate shares on 3 rows" in report["table"]
    assert "gate_shares" in json.loads((tmp_path / "importance.json").read_text())


def test_importing_explain_does_not_import_matplotlib():
    code = "import sys, crossrank, crossrank.explain; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
