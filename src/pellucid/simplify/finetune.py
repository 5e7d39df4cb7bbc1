"""Fine-tuning after pruning: a few epochs of training that keep the pruned weights at zero.

The third step of "score, remove, fine-tune" (Han et al. 2015, "Learning both Weights and
Connections for Efficient Neural Networks"): minimise the cross-entropy on labelled data with Adam,
and after every step multiply each masked weight by its 0/1 mask, so what was pruned stays pruned.
Cost: ``epochs · n`` forward and backward passes.
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
from .prune import MASKS_ATTRIBUTE

__all__ = ["fine_tune"]


def fine_tune(
    model: Any,
    data: Any,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    masks: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> tuple[nn.Module, TrainReport]:
    """Train a copy of a pruned ``model`` on ``(inputs, labels)``; returns ``(copy, report)``.

    Options:
        epochs: passes over the data (default 5).
        lr: Adam's learning rate (default 1e-3: small, to recover rather than retrain).
        batch_size: rows per minibatch (default 64).
        masks: parameter name -> 0/1 tensor of the weights to keep at zero (default: the masks
            :func:`~pellucid.simplify.prune` left on the model, else every weight that is exactly
            zero now). Structured-pruned models need none: their removed units are gone.
        seed: shuffling and dropout (the global RNG is left as found).

    The report gives the mean loss per epoch and the accuracy on ``data`` before and after.
    """
    original = torch_module(model, "fine_tune")
    copy = copy_module(original)
    wrapped = Model(copy, module=copy)
    x, y = split_data(wrapped, data, need_labels=True)
    params = dict(copy.named_parameters())
    if masks is None:
        masks = getattr(original, MASKS_ATTRIBUTE, None)
    if masks is None:
        masks = {k: (p != 0).to(p.dtype) for k, p in params.items()
                 if k.endswith("weight") and p.dim() > 1 and bool((p == 0).any())}
    unknown = [k for k in masks if k not in params or masks[k].shape != params[k].shape]
    if unknown:
        raise InputError(f"masks {unknown} do not match any parameter of the model (name and shape)")
    before = accuracy(wrapped, x, y, batch_size=batch_size)
    losses = fit(copy, x, lambda out, idx: F.cross_entropy(out, y[idx]), epochs=epochs, lr=lr,
                 batch_size=batch_size, seed=seed, masks=masks)
    object.__setattr__(copy, MASKS_ATTRIBUTE, {k: m.clone() for k, m in masks.items()})
    report = TrainReport(losses, before, accuracy(wrapped, x, y, batch_size=batch_size),
                         params={"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed})
    return copy, report
