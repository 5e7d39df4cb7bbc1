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
from torch import nn

from .._common import check_positive
from .._deprecation import renamed
from ._report import Simplified, recorded
from ._training import Schedule, as_module, train_copy

__all__ = ["sparsity_penalty", "train"]


def _strengths(l1: Any, l2: Any) -> tuple[float, float]:
    return check_positive(l1, "l1", allow_zero=True), check_positive(l2, "l2", allow_zero=True)


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
    l1, l2 = _strengths(l1, l2)
    module, _ = as_module(model, "sparsity_penalty")
    params = [p for p in module.parameters() if p.requires_grad and (biases or p.dim() > 1)]
    device = params[0].device if params else torch.device("cpu")
    total = torch.zeros((), device=device)
    for p in params:
        if l1:
            total = total + l1 * p.abs().sum()
        if l2:
            total = total + l2 * p.pow(2).sum()
    return total


@renamed(batch_size="train_batch_size")
@recorded()
def train(
    model: Any,
    data: Any,
    *,
    l1: float = 0.0,
    l2: float = 0.0,
    epochs: int = 10,
    lr: float = 1e-2,
    train_batch_size: int = 64,
    seed: int = 0,
    progress: bool | None = None,
) -> Simplified:
    """Train a copy of ``model`` on ``(inputs, labels)`` with cross-entropy plus the penalty.

    Adam in shuffled minibatches of ``train_batch_size`` rows (``batch_size=`` is its deprecated
    old name), seeded (the global RNG is left as found); returns ``Simplified(model=trained copy,
    report=TrainReport)`` (loss per epoch, accuracy on ``data`` before and after). The model
    passed in is not changed. ``progress``: a bar over the epochs on runs longer than two seconds.
    """
    l1, l2 = _strengths(l1, l2)
    schedule = Schedule.checked(epochs, lr, train_batch_size)
    penalty = (lambda mod: sparsity_penalty(mod, l1=l1, l2=l2)) if (l1 or l2) else None
    return train_copy(model, data, "train", schedule, seed=seed, progress=progress, penalty=penalty)
