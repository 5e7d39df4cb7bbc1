"""What a layer computes for some inputs: its outputs, captured by forward hooks.

``activations(model, x, layers=["features.0", "classifier.1"])`` runs the model once per chunk of
rows with a forward hook on each named layer and returns ``{name: output}``, concatenated over the
chunks. The hooks are removed afterwards, also when the model raises (Lucent's
``render.hook_model``, Captum's ``LayerActivation`` — for many layers in one pass).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..attribution._layer import capture
from .._hooks import layer_name
from ..errors import InputError, LayerError
from ..model import Model
from ..adapters import wrap

__all__ = ["activations", "resolve_layers"]


def resolve_layers(m: Model, layers: Any) -> tuple[list[nn.Module], list[str]]:
    """Modules and dotted names for ``layers``: one name/module or a sequence of them."""
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    if layers is None or not isinstance(layers, Sequence) or len(layers) == 0:
        raise LayerError("layers must name at least one layer (a dotted name or a module)")
    modules = [m.layer(layer) for layer in layers]
    return modules, [layer_name(m, mod) for mod in modules]


def activations(
    model: Any,
    inputs: Any,
    *,
    layers: str | nn.Module | Sequence[str | nn.Module],
    batch_size: int | None = None,
    progress: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Outputs of the named layers for every row: ``{name: tensor (n, *layer shape)}``.

    One forward pass per chunk of at most ``batch_size`` rows records every layer at once; a
    layer whose output is a tuple (a transformer block) is read at its first tensor. The model
    runs in eval mode with its state restored after. A layer that runs several times per pass
    (a reused module) gives one entry per call, concatenated along a new axis 1.

    Cost: ``n`` forward rows, no backward. Memory: the layers' outputs for all rows.

    Example:
        >>> import torch, pellucid
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
        >>> acts = pellucid.features.activations(net, torch.ones(2, 4), layers=["0", "1"])
        >>> acts["1"].shape
        torch.Size([2, 3])
    """
    m = wrap(model, batch_size=batch_size)
    modules, names = resolve_layers(m, layers)
    with m.explaining():
        x = m.prepare(inputs)
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        with torch.no_grad():
            for s, _ in m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=progress,
                              desc="activations"):
                with capture(m, names) as (_, seen):
                    m.forward(x[s])
                for name in names:
                    calls = seen[name]
                    if not calls:
                        raise LayerError(
                            f"layer {name!r} did not run in the forward pass, so it has no "
                            "activations; pick a layer the model uses"
                        )
                    parts[name].append(calls[0] if len(calls) == 1 else torch.stack(calls, 1))
    try:
        return {name: torch.cat(p) for name, p in parts.items()}
    except RuntimeError as err:
        raise InputError(f"layer outputs differ in shape between chunks of rows: {err}") from err
