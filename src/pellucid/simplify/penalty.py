"""Sparsity by regularisation: the L1/L2 penalty to add to a training loss, and a trainer using it.

``Ω(θ) = λ₁ · Σ |w| + λ₂ · Σ w²`` over the weight matrices and kernels (parameters with two or
more dimensions; biases and normalisation scales are left free, as is usual). L1 drives weights
to exactly zero in the limit (Tibshirani 1996, the lasso) and makes magnitude pruning afterwards
nearly free; L2 (weight decay) shrinks them smoothly (Krogh & Hertz 1992). Cost: one pass over
the parameters per step.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..model import Model
from ._common import accuracy, copy_module, fit, split_data, torch_module
from ._report import TrainReport

__all__ = ["sparsity_penalty", "train"]


def _check(l1: Any, l2: Any) -> None:
    for name, v in (("l1", l1), ("l2", l2)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise InputError(f"{name} must be a non-negative number, got {v!r}")


def sparsity_penalty(model: nn.Module, *, l1: float = 0.0, l2: float = 0.0,
                     biases: bool = False) -> torch.Tensor:
    """``l1 · Σ|w| + l2 · Σw²`` over the model's weights, differentiable: add it to the loss.

    ``biases=True`` also penalises one-dimensional parameters (biases, norm scales).

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> with torch.no_grad():
        ...     _ = net.weight.copy_(torch.tensor([[1.0, -2.0]]))
        >>> round(sparsity_penalty(net, l1=0.1, l2=0.01).item(), 4)  # 0.1 * 3 + 0.01 * 5
        0.35
    """
    _check(l1, l2)
    module = torch_module(model, "sparsity_penalty")
    params = [p for p in module.parameters() if p.requires_grad and (biases or p.dim() > 1)]
    device = params[0].device if params else torch.device("cpu")
    total = torch.zeros((), device=device)
    for p in params:
        if l1:
            total = total + l1 * p.abs().sum()
        if l2:
            total = total + l2 * p.pow(2).sum()
    return total


def train(
    model: Any,
    data: Any,
    *,
    epochs: int = 10,
    lr: float = 1e-2,
    batch_size: int = 64,
    l1: float = 0.0,
    l2: float = 0.0,
    seed: int = 0,
) -> tuple[nn.Module, TrainReport]:
    """Train a copy of ``model`` on ``(inputs, labels)`` with cross-entropy plus the penalty.

    Adam in shuffled minibatches, seeded (the global RNG is left as found); returns the trained
    copy and a :class:`~pellucid.simplify.TrainReport` (loss per epoch, accuracy on ``data``
    before and after). The model passed in is not changed.
    """
    _check(l1, l2)
    copy = copy_module(torch_module(model, "train"))
    wrapped = Model(copy, module=copy)
    x, y = split_data(wrapped, data, need_labels=True)
    before = accuracy(wrapped, x, y)
    penalty = (lambda mod: sparsity_penalty(mod, l1=l1, l2=l2)) if (l1 or l2) else None
    losses = fit(copy, x, lambda out, idx: F.cross_entropy(out, y[idx]), epochs=epochs, lr=lr,
                 batch_size=batch_size, seed=seed, penalty=penalty)
    return copy, TrainReport(losses, before, accuracy(wrapped, x, y),
                             params={"epochs": epochs, "lr": lr, "batch_size": batch_size,
                                     "l1": l1, "l2": l2, "seed": seed})
