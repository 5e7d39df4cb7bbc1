"""Fine-tuning after pruning: a few epochs of training that keep the pruned weights at zero.

The third step of "score, remove, fine-tune" (Han et al. 2015, "Learning both Weights and
Connections for Efficient Neural Networks"): minimise the cross-entropy on labelled data with Adam,
and after every step multiply each masked weight by its 0/1 mask, so what was pruned stays pruned.
Cost: ``epochs · n`` forward and backward passes.
"""
from __future__ import annotations

from typing import Any

import torch

from .._deprecation import renamed
from ..errors import InputError
from ._report import Simplified, recorded
from ._training import Schedule, as_module, train_copy
from .prune import MASKS_ATTRIBUTE

__all__ = ["fine_tune"]


@renamed(batch_size="train_batch_size")
@recorded("masks")
def fine_tune(
    model: Any,
    data: Any,
    *,
    masks: dict[str, torch.Tensor] | None = None,
    epochs: int = 5,
    lr: float = 1e-3,
    train_batch_size: int = 64,
    seed: int = 0,
    progress: bool | None = None,
) -> Simplified:
    """Train a copy of a pruned ``model`` on ``(inputs, labels)``; returns
    ``Simplified(model=trained copy, report=TrainReport)``.

    Options:
        masks: parameter name -> 0/1 tensor of the weights to keep at zero (default: the masks
            :func:`~pellucid.simplify.prune` left on the model, else every weight that is exactly
            zero now). Structured-pruned models need none: their removed units are gone.
        epochs: passes over the data (default 5).
        lr: Adam's learning rate (default 1e-3: small, to recover rather than retrain).
        train_batch_size: rows per training minibatch (default 64; ``batch_size=`` is its
            deprecated old name).
        seed: shuffling and dropout (the global RNG is left as found).
        progress: a progress bar over the epochs on runs longer than two seconds.

    The report gives the mean loss per epoch and the accuracy on ``data`` before and after.
    """
    schedule = Schedule.checked(epochs, lr, train_batch_size)
    original, _ = as_module(model, "fine_tune")
    params = dict(original.named_parameters())
    if masks is None:
        masks = getattr(original, MASKS_ATTRIBUTE, None)
    if masks is None:
        masks = {k: (p != 0).to(p.dtype) for k, p in params.items()
                 if k.endswith("weight") and p.dim() > 1 and bool((p == 0).any())}
    unknown = [k for k in masks if k not in params or masks[k].shape != params[k].shape]
    if unknown:
        raise InputError(f"masks {unknown} do not match any parameter of the model (name and shape)")
    result = train_copy(model, data, "fine_tune", schedule, seed=seed, progress=progress, masks=masks)
    object.__setattr__(result.model, MASKS_ATTRIBUTE, {k: m.clone() for k, m in masks.items()})
    return result
