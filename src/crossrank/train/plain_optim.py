"""torch's optimizers without the import of ``torch._dynamo`` their first call brings.

Every ``torch.optim.Optimizer`` constructor calls ``add_param_group``, and torch decorates it
(and ``zero_grad``, ``state_dict``, ``load_state_dict``, and each built-in optimizer's
``step``) so that it behaves under ``torch.compile``; the decorators import ``torch._dynamo``
on their first call. That import is 1.3-2 s of CPU on the development machine: about 40% of a
``crossrank train`` on 10,000 rows (4.2-5.0 s against 2.5-3.0 s, measured 2026-12-02), and a
fixed cost in front of every run, test and DDP rank.

crossrank never compiles an optimizer step (``torch.compile`` of the whole step was measured
and dropped, BENCHMARKS.md), so the classes here run torch's own functions with the
decorators peeled off (``inspect.unwrap``): the same arithmetic, the same state and
``state_dict`` format (checkpoints load both ways), the step under ``torch.no_grad`` as
torch's ``_use_grad_for_differentiable`` does it for non-differentiable optimizers. Do not
step them inside ``torch.compile``.

Example:
    >>> p = torch.nn.Parameter(torch.ones(2))
    >>> opt = Adagrad([p], lr=0.5)
    >>> p.sum().backward()
    >>> opt.step()
    >>> p.detach().tolist()
    [0.5, 0.5]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["SGD", "Adagrad", "Adam", "WithoutDynamoImport"]

_ADD_PARAM_GROUP = inspect.unwrap(torch.optim.Optimizer.add_param_group)
_ZERO_GRAD = inspect.unwrap(torch.optim.Optimizer.zero_grad)
_STATE_DICT = inspect.unwrap(torch.optim.Optimizer.state_dict)
_LOAD_STATE_DICT = inspect.unwrap(torch.optim.Optimizer.load_state_dict)


class WithoutDynamoImport(torch.optim.Optimizer):
    """An optimizer base whose bookkeeping methods are torch's, undecorated (module doc).
    Put it first among the bases of a subclass of a torch optimizer."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _ADD_PARAM_GROUP(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _ZERO_GRAD(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _STATE_DICT(self)  # type: ignore[no-any-return]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _LOAD_STATE_DICT(self, state_dict)


def _plain_step(cls: type[torch.optim.Optimizer]) -> Callable[..., Any]:
    """``cls.step`` without its decorators, under ``torch.no_grad``."""
    step = inspect.unwrap(cls.step)

    @torch.no_grad()
    def plain(self: torch.optim.Optimizer, closure: Any = None) -> Any:
        if self.defaults.get("differentiable"):
            raise ValueError("differentiable=True needs torch's own optimizer class")
        return step(self, closure)

    plain.__doc__ = f"torch.optim.{cls.__name__}.step, undecorated (module doc)."
    return plain


class Adam(WithoutDynamoImport, torch.optim.Adam):
    """``torch.optim.Adam`` without the ``torch._dynamo`` import (module doc)."""

    step = _plain_step(torch.optim.Adam)  # type: ignore[assignment]


class Adagrad(WithoutDynamoImport, torch.optim.Adagrad):
    """``torch.optim.Adagrad`` without the ``torch._dynamo`` import (module doc)."""

    step = _plain_step(torch.optim.Adagrad)  # type: ignore[assignment]


class SGD(WithoutDynamoImport, torch.optim.SGD):
    """``torch.optim.SGD`` without the ``torch._dynamo`` import (module doc)."""

    step = _plain_step(torch.optim.SGD)  # type: ignore[assignment]
