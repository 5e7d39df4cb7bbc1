"""Shared mechanics of :mod:`pellucid.simplify`: reading data, copying a module, scoring, training.

``data`` everywhere is the inputs alone (a tensor, array or frame) or a pair ``(inputs, labels)``;
an object with ``x`` and ``y`` attributes (``pellucid.zoo.planted_tabular``) counts as a pair.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .._state import preserved
from ..errors import InputError, ModelError
from ..model import Model

__all__ = [
    "split_data", "torch_module", "copy_module", "predict", "accuracy", "agreement",
    "fit", "seeded", "count_parameters", "holdout",
]


def split_data(model: Model, data: Any, *, name: str = "data", need_labels: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(inputs, labels or None)`` from ``data``, checked and on the model's device."""
    if data is None:
        raise InputError(f"{name} is required here: pass the inputs, or a pair (inputs, labels)")
    if hasattr(data, "x") and hasattr(data, "y") and not isinstance(data, torch.Tensor):
        data = (data.x, data.y)
    labels = None
    if isinstance(data, (tuple, list)) and len(data) == 2 and not _is_row_list(data):
        data, labels = data
    x = model.prepare(data, name=f"{name} inputs")
    y = None
    if labels is not None:
        y = torch.as_tensor(labels.to_numpy() if hasattr(labels, "to_numpy") else labels)
        if y.is_floating_point() or y.dim() != 1 or len(y) != len(x):
            raise InputError(
                f"{name} labels must be one integer class per input row ({len(x)} rows); got "
                f"{'dtype ' + str(y.dtype) if y.is_floating_point() else 'shape ' + str(tuple(y.shape))}"
            )
        y = y.long().to(x.device)
    if need_labels and y is None:
        raise InputError(f"{name} must be labelled here: pass a pair (inputs, labels)")
    return x, y


def _is_row_list(data: Any) -> bool:
    # Two plain rows of numbers ([[1, 2], [3, 4]]) are inputs, not an (inputs, labels) pair.
    return isinstance(data, list) and all(isinstance(r, (list, tuple)) for r in data)


def torch_module(model: Any, what: str) -> nn.Module:
    """The ``nn.Module`` behind ``model``; a :class:`ModelError` when there is none."""
    m = model.module if isinstance(model, Model) else model
    if not isinstance(m, nn.Module):
        raise ModelError(f"{what} needs a torch.nn.Module; got {type(model).__name__}")
    return m


def copy_module(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` in eval mode, detached from the original's grads and hooks."""
    with preserved(module):
        clone = copy.deepcopy(module)
    for p in clone.parameters():
        p.grad = None
    return clone.eval()


def predict(model: Model, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
    """Outputs ``(n, k)`` of a wrapped model, with its module restored after."""
    with model.explaining():
        return model.outputs(x, batch_size=batch_size, progress=False)


def classes(outputs: torch.Tensor) -> torch.Tensor:
    """Predicted class per row: the argmax, or ``output > 0`` for a one-column model."""
    return outputs.argmax(dim=1) if outputs.shape[1] > 1 else (outputs[:, 0] > 0).long()


def accuracy(model: Model, x: torch.Tensor, y: torch.Tensor | None, **kw: Any) -> float | None:
    """Share of rows whose predicted class equals the label (``None`` without labels)."""
    if y is None:
        return None
    return float((classes(predict(model, x, **kw)).cpu() == y.cpu()).float().mean())


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of rows on which two output tensors predict the same class."""
    return float((classes(a).cpu() == classes(b).cpu()).float().mean())


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def holdout(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ``(train index, held-out index)`` with ``round(fraction * n)`` rows held out."""
    if not 0.0 < fraction < 1.0:
        raise InputError(f"holdout must be in (0, 1), got {fraction!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = max(1, min(n - 1, round(fraction * n)))
    return perm[k:], perm[:k]


def train_and_test(model: Model, data: Any, test: Any, fraction: float, seed: int):
    """``(x, y, x_test, y_test)``: ``test`` when given, else a seeded hold-out of ``data``."""
    x, y = split_data(model, data)
    if test is not None:
        x_test, y_test = split_data(model, test, name="test")
        return x, y, x_test, y_test
    tr, te = holdout(len(x), fraction, seed)
    return x[tr], (None if y is None else y[tr]), x[te], (None if y is None else y[te])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Global RNG seeded inside (dropout draws from it), the caller's state restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def fit(
    module: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    masks: dict[str, torch.Tensor] | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
) -> list[float]:
    """Adam on ``loss_fn(outputs, row index)`` in shuffled minibatches; mean loss per epoch.

    ``masks`` maps parameter names to 0/1 tensors: the masked entries are zeroed after every
    step, so pruned weights stay exactly zero (Adam's momentum would otherwise revive them).
    ``penalty(module)`` is added to every minibatch loss. One intra-op thread: on minibatches of
    these sizes more threads cost more in synchronisation than they save (see pellucid.zoo).
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if not lr > 0:
        raise InputError(f"lr must be positive, got {lr!r}")
    params = dict(module.named_parameters())
    if masks:
        masks = {k: m.to(params[k].device, params[k].dtype) for k, m in masks.items()}
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam([p for p in params.values()], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n, losses = len(x), []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with seeded(seed), torch.enable_grad():
            module.train()
            for _ in range(epochs):
                perm = torch.randperm(n, generator=gen).to(x.device)
                total = 0.0
                for start in range(0, n, batch_size):
                    idx = perm[start:start + batch_size]
                    opt.zero_grad()
                    loss = loss_fn(module(x[idx]), idx)
                    if penalty is not None:
                        loss = loss + penalty(module)
                    loss.backward()
                    opt.step()
                    if masks:
                        with torch.no_grad():
                            for k, m in masks.items():
                                params[k].mul_(m)
                    total += float(loss.detach()) * len(idx)
                losses.append(total / n)
    finally:
        torch.set_num_threads(threads)
        module.eval()
        for p in params.values():
            p.grad = None
    return losses
