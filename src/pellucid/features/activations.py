"""What a layer computes for some inputs: its outputs, captured by forward hooks.

``activations(model, x, layers=["features.0", "classifier.1"])`` runs the model once per chunk of
rows with a forward hook on each named layer and returns ``{key: output}``, concatenated over the
chunks. The hooks (:func:`pellucid._hooks.hooks`) are registered once for the whole call and
removed afterwards, also when the model raises (Lucent's ``render.hook_model``, Captum's
``LayerActivation`` — for many layers in one pass).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._hooks import HookRun, capture, layer_key
from ..adapters import wrap
from ..errors import InputError, LayerError
from ..model import Model

__all__ = ["activations", "resolve_layers"]


def resolve_layers(m: Model, layers: Any) -> list[str]:
    """The layer keys for ``layers`` (one layer or a sequence): dotted names and ``"name@k"``
    call sites as given, modules as their dotted names; each checked to exist, repeats dropped."""
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    if layers is None or not isinstance(layers, Sequence) or len(layers) == 0:
        raise LayerError("layers must name at least one layer (a dotted name or a module)")
    keys = []
    for layer in layers:
        keys.append(layer_key(m, layer))
    return list(dict.fromkeys(keys))


def _per_row(run: HookRun, key: str, calls: list[torch.Tensor]) -> torch.Tensor:
    """One chunk's activation of ``key``: its only call, or every call stacked on axis 1."""
    if len(calls) == 1:
        return calls[0]
    if not calls:
        if run.calls(key):  # the module ran, but not as often as the call site asks
            run.check_once(key)
        raise LayerError(f"layer {key!r} did not run in the forward pass, so it has no "
                         "activations; pick a layer the model uses")
    if len({tuple(c.shape) for c in calls}) > 1:
        sites = ", ".join(f"'{key}@{k}' {tuple(c.shape[1:])}" for k, c in enumerate(calls[:4]))
        raise LayerError(
            f"layer {key!r} is a reused module that ran {len(calls)} times in one forward pass "
            f"with outputs of different shapes, so its calls cannot be stacked; pick one call "
            f"site: {sites}{', ...' if len(calls) > 4 else ''}")
    return torch.stack(calls, 1)


def activations(
    model: Any,
    inputs: Any,
    *,
    layers: str | nn.Module | Sequence[str | nn.Module],
    batch_size: int | None = None,
    progress: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Outputs of the named layers for every row: ``{key: tensor (n, *layer shape)}``.

    ``layers``: dotted names, modules (keyed by their dotted name) or call sites ``"name@k"``
    (the ``k``-th call, from 0, of a module that runs several times per forward pass, such as
    the one ``nn.ReLU`` of a torchvision ResNet block; keyed as given). One forward pass per
    chunk of at most ``batch_size`` rows records every layer at once; a layer whose output is a
    tuple (a transformer block) is read at its first tensor. The model runs in eval mode with its
    state restored after. A reused module named without a call site gives one entry per call,
    stacked along a new axis 1 (a :class:`~pellucid.errors.LayerError` naming the call sites if
    the calls differ in shape).

    Cost: ``n`` forward rows, no backward. Memory: the layers' outputs for all rows.

    Example:
        >>> import torch, pellucid
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
        >>> acts = pellucid.features.activations(net, torch.ones(2, 4), layers=["0", "1"])
        >>> acts["1"].shape
        torch.Size([2, 3])
    """
    m = wrap(model, batch_size=batch_size)
    keys = resolve_layers(m, layers)
    parts: dict[str, list[torch.Tensor]] = {key: [] for key in keys}
    with m.explaining():
        x = m.prepare(inputs)
        with torch.no_grad(), capture(m, keys) as (run, seen):
            for rows, _ in m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=progress,
                                    desc="activations"):
                run.reset()
                for calls in seen.values():
                    calls.clear()
                m.forward(x[rows])
                for key in keys:
                    parts[key].append(_per_row(run, key, seen[key]))
    try:
        return {key: torch.cat(p) for key, p in parts.items()}
    except RuntimeError as err:
        raise InputError(f"layer outputs differ in shape between chunks of rows: {err}") from err
