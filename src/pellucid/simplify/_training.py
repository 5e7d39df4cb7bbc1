"""Training and scoring mechanics of :mod:`pellucid.simplify`: copies of a module, predictions,
accuracy and agreement, and the one training loop (Adam in shuffled minibatches) that
``fine_tune``, ``train`` and ``distill`` share.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .._common import check_positive, check_positive_int, progress_bar
from .._state import preserved
from ..errors import ModelError
from ..model import Model
from ._data import split_data
from ._report import Simplified, TrainReport

__all__ = [
    "as_module", "copy_module", "count_parameters", "predict", "classes", "accuracy", "agreement",
    "steps", "Schedule", "seeded", "fit", "train_copy",
]


def as_module(model: Any, what: str) -> tuple[nn.Module, Model]:
    """The ``nn.Module`` behind ``model`` and a :class:`Model` on it; a :class:`ModelError` for
    anything but a torch module (``what`` names the caller)."""
    module = model.module if isinstance(model, Model) else model
    if not isinstance(module, nn.Module):
        raise ModelError(f"{what} needs a torch.nn.Module; got {type(model).__name__}")
    return module, model if isinstance(model, Model) else Model(module, module=module)


def copy_module(module: nn.Module, device: torch.device | None = None) -> tuple[nn.Module, Model]:
    """A deep copy of ``module`` in eval mode (on ``device`` if given), detached from the
    original's grads and hooks, and a :class:`Model` on it."""
    with preserved(module):
        clone = copy.deepcopy(module)
    for p in clone.parameters():
        p.grad = None
    clone.eval()
    if device is not None:
        clone.to(device)
    return clone, Model(clone, module=clone)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def predict(model: Model, x: torch.Tensor, *, batch_size: int | None = None,
            progress: bool | None = False) -> torch.Tensor:
    """Outputs ``(n, k)`` of a wrapped model, with its module restored after."""
    with model.explaining():
        return model.outputs(x, batch_size=batch_size, progress=progress)


def classes(outputs: torch.Tensor) -> torch.Tensor:
    """Predicted class per row: the argmax, or ``output > 0`` for a one-column model."""
    return outputs.argmax(dim=1) if outputs.shape[1] > 1 else (outputs[:, 0] > 0).long()


def accuracy(model: Model, x: torch.Tensor, y: torch.Tensor | None, **kw: Any) -> float | None:
    """Share of rows whose predicted class equals the label (``None`` without labels)."""
    if y is None:
        return None
    return float((classes(predict(model, x, **kw)).cpu() == y.cpu()).float().mean())


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of rows on which two output tensors (or the labels ``b``) predict the same class."""
    b = b if b.dim() == 1 else classes(b)
    return float((classes(a).cpu() == b.cpu()).float().mean())


def steps(n: int, progress: bool | None, desc: str, unit: str) -> Iterable[int]:
    """``range(n)``, behind a progress bar on runs longer than two seconds (``progress``)."""
    return progress_bar(range(n), progress if n > 1 else False, desc, unit=unit)


class Schedule(NamedTuple):
    """How to train: ``epochs`` passes, Adam's ``lr``, ``batch_size`` rows per minibatch."""

    epochs: int
    lr: float
    batch_size: int

    @classmethod
    def checked(cls, epochs: Any, lr: Any, train_batch_size: Any) -> Schedule:
        return cls(check_positive_int(epochs, "epochs"), check_positive(lr, "lr"),
                   check_positive_int(train_batch_size, "train_batch_size"))


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
    schedule: Schedule,
    *,
    seed: int,
    progress: bool | None,
    masks: dict[str, torch.Tensor] | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
) -> list[float]:
    """Adam on ``loss_fn(outputs, row index)`` in shuffled minibatches; mean loss per epoch.

    ``masks`` maps parameter names to 0/1 tensors: the masked entries are zeroed after every
    step, so pruned weights stay exactly zero (Adam's momentum would otherwise revive them).
    ``penalty(module)`` is added to every minibatch loss. One intra-op thread: on minibatches of
    these sizes more threads cost more in synchronisation than they save (see pellucid.zoo).
    """
    params = dict(module.named_parameters())
    if masks:
        masks = {k: m.to(params[k].device, params[k].dtype) for k, m in masks.items()}
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam(list(params.values()), lr=schedule.lr)
    gen = torch.Generator().manual_seed(seed)
    n, size, losses = len(x), schedule.batch_size, []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with seeded(seed), torch.enable_grad():
            module.train()
            for _ in steps(schedule.epochs, progress, "training", "epoch"):
                perm = torch.randperm(n, generator=gen).to(x.device)
                total = 0.0
                for start in range(0, n, size):
                    idx = perm[start:start + size]
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


def train_copy(
    model: Any, data: Any, what: str, schedule: Schedule, *, seed: int, progress: bool | None,
    masks: dict[str, torch.Tensor] | None = None, penalty: Callable[[nn.Module], torch.Tensor] | None = None,
) -> Simplified:
    """A copy of ``model`` trained with cross-entropy on labelled ``data`` (see :func:`fit`), and a
    :class:`TrainReport` with the accuracy on ``data`` before and after."""
    module, _ = as_module(model, what)
    clone, wrapped = copy_module(module)
    x, y = split_data(wrapped, data, need_labels=True)
    before = accuracy(wrapped, x, y)
    losses = fit(clone, x, lambda out, idx: F.cross_entropy(out, y[idx]), schedule, seed=seed,
                 progress=progress, masks=masks, penalty=penalty)
    return Simplified(clone, TrainReport(losses, before, accuracy(wrapped, x, y)))
