"""The demo's two experiments in a quick form, with the published targets asserted."""

import math

from crossrank.demo import almond_data, format_matrix, polynomial_data, run_almond, run_polynomial


def test_polynomial_data_is_the_published_function():
    x, y = polynomial_data(50)
    assert abs(x * 200 - (x * 200).round()).max() < 1e-9 and x.max() < 1
    assert abs(y - (x[:, 0] ** 2 + x[:, 0] * x[:, 1] + x[:, 1] * x[:, 2] + x[:, 2] ** 2)).max() == 0


def test_cross_layer_learns_the_polynomial():
    rows, _ = run_polynomial(epochs=150, deep_epochs=1, num_rows=100_000)
    cross, _, mean = rows
    assert cross.params == 16
    assert cross.eval_mse <= 1e-10
    assert 0.6 < mean.eval_rmse < 0.8  # the published mean predictor: 0.69


def test_cross_layer_fits_the_almond_data():
    rows, model = run_almond(epochs=100, deep_epochs=1)
    cross, deep, mean = rows
    assert cross.params == 36 and deep.params == 167425
    assert cross.eval_rmse <= 0.019  # keras-rs: 0.0191; published: 0.0281
    assert cross.eval_rmse < mean.eval_rmse / 10
    text = format_matrix(model.cross.effective_weight(0).abs(), ("age", "employed", "rum",
                                                                 "soda", "almond"))
    assert text.splitlines()[0].split() == ["age", "employed", "rum", "soda", "almond"]


def test_almond_data_has_the_published_scale():
    x, y = almond_data(1000)
    assert set(x[:, 1]) <= {0.0, 0.5} and math.isclose(x[:, 0].max(), 79 / 68, rel_tol=0.05)
