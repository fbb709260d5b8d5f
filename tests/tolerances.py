"""The one table of numeric tolerances for the tests; never loosened to make a test pass.

One row per precision a result is computed in: a torch dtype, or "tf32" (float32 matmuls on
tensor cores, 10-bit mantissa, as on a GPU with ``allow_tf32``). A row gives up to two kinds of
bound against a float64 reference, whichever the tests use at that precision:

* elementwise, ``|actual - expected| <= atol + rtol * |expected|`` (``assert_close``): for ops
  computed the way the reference computes them;
* normwise, ``max |actual - expected| <= normwise * max |expected|`` (``assert_close_normwise``):
  for the fused kernels, whose summation order and intermediate roundings differ from the
  reference, so an entry that cancels to near zero carries an error set by the tensor's scale,
  not its own. The half-precision kernels store x_l, h_l and the gradients between layers in
  their own dtype, as eager PyTorch does; a 3-layer stack then lands at a few unit roundoffs u
  (bf16 u = 2^-8, fp16 u = 2^-11), and eager PyTorch in bf16 itself reaches 1.6e-2 (weight) to
  2.9e-2 (bias) on the kernel tests' inputs, so their entries allow ~8-10 u.
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    rtol: float | None = None  # elementwise
    atol: float | None = None  # elementwise
    normwise: float | None = None


TABLE: dict[torch.dtype | str, Tolerance] = {
    torch.float64: Tolerance(rtol=1e-10, atol=1e-12, normwise=1e-12),
    torch.float32: Tolerance(rtol=1e-5, atol=1e-6, normwise=1e-5),
    "tf32": Tolerance(normwise=5e-3),  # fp16's 10-bit mantissa, fp16's entry
    torch.float16: Tolerance(normwise=5e-3),
    torch.bfloat16: Tolerance(rtol=1e-2, atol=1e-2, normwise=3e-2),
}

# (rtol, atol) by dtype: the elementwise columns of TABLE.
TOLERANCES = {key: (t.rtol, t.atol) for key, t in TABLE.items() if t.rtol is not None}


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Elementwise bound of ``actual``'s dtype."""
    rtol, atol = TOLERANCES[actual.dtype]
    torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=rtol, atol=atol)


def assert_close_normwise(actual: torch.Tensor, expected: torch.Tensor,
                          precision: torch.dtype | str, what: str = "values") -> None:
    """Normwise bound of ``precision`` (a dtype or "tf32"); ``actual`` must be finite too (the
    kernel tests poison unwritten buffers with NaN)."""
    tol = TABLE[precision].normwise
    if tol is None:
        raise KeyError(f"no normwise tolerance for {precision}")
    assert actual.shape == expected.shape, f"{what}: {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values (unwritten elements?)"
    err = (actual.double() - expected.double()).abs().max() / expected.double().abs().max()
    assert err.item() < tol, f"{what}: relative error {err.item():.3g} >= {tol:g} ({precision})"
