"""The one table of numeric tolerances for the tests; never loosened to make a test pass."""

import torch

# (rtol, atol) by dtype for comparisons against a float64 reference.
TOLERANCES = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.bfloat16: (1e-2, 1e-2),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    rtol, atol = TOLERANCES[actual.dtype]
    torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=rtol, atol=atol)
