"""A layer's output read or replaced over all rows, and Integrated Gradients at a layer; shared by
layer IG, conductance and the CAMs. The hooks themselves are :mod:`pellucid._hooks`'.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._hooks import capture, layer_key, replacing
from ..errors import LayerError
from ..model import gather, select_target
from ._path import path_sum


def layer_outputs(
    m: Any, x: torch.Tensor, layer: str | nn.Module, *, batch_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(layer output, model output)`` for all rows of ``x``, without gradients, in chunks."""
    acts, outs = [], []
    with torch.no_grad(), capture(m, [layer]) as (run, seen):
        (name,) = seen
        for rows, _ in m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=False, desc=name):
            run.reset()
            seen[name].clear()
            outs.append(m.forward(x[rows], rows))
            run.check_once(name)
            acts.append(seen[name][0])
    return torch.cat(acts), torch.cat(outs)


def outputs_with_layer(
    m: Any, x: torch.Tensor, layer: str | nn.Module, acts: torch.Tensor, *, batch_size: int | None,
) -> torch.Tensor:
    """Model outputs on ``x`` with the layer's output replaced row by row by ``acts``."""
    outs = []
    current: list[torch.Tensor] = []
    name = layer_key(m, layer)
    with torch.no_grad(), replacing(m, layer, lambda _a: current[0]) as (run, _):
        for rows, _ in m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=False, desc=name):
            current[:] = [acts[rows]]
            run.reset()
            outs.append(m.forward(x[rows], rows))
            run.check_once(name)
    return torch.cat(outs)


def layer_integrated_gradients(
    m: Any, x: torch.Tensor, base: torch.Tensor, layer: Any, target: Any, *,
    alphas: torch.Tensor, weights: torch.Tensor, batch_size: int | None, progress: bool | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """Layer IG: ``(a(x) − a(x')) ⊙ Σ_k w_k ∂f_t/∂a |_{a(x') + α_k (a(x) − a(x'))}``.

    ``a`` is the layer's output. Each path point runs the model on the row's own inputs with the
    layer's output replaced by the interpolated activation (so everything that does not flow
    through the layer — an attention mask, a residual from before it — stays that of ``x``), as
    Captum's ``LayerIntegratedGradients`` does. Completeness holds with respect to the layer:
    ``Σ values = f_t(x) − f_t(x ; a ← a(x'))``. Returns ``(values, outputs, baseline_outputs,
    target, layer name)``; the name is the key given (a reused module's ``name@k`` call site).
    """
    key = layer_key(m, layer)
    a_x, out_x = layer_outputs(m, x, key, batch_size=batch_size)
    a_b, _ = layer_outputs(m, base, key, batch_size=batch_size)
    if a_b.shape != a_x.shape:
        raise LayerError(f"layer {key!r} gives differently shaped outputs at the inputs and the baseline")
    t = select_target(out_x, target)
    baseline_outputs = gather(outputs_with_layer(m, x, key, a_b, batch_size=batch_size), t)
    current: list[torch.Tensor] = []

    def gradient(points: torch.Tensor, rows: torch.Tensor, _direction: torch.Tensor) -> torch.Tensor:
        point = points.requires_grad_(True)
        current[:] = [point]
        with torch.enable_grad():
            run.reset()
            out = m.forward(x[rows], rows)
            run.check_once(key)
            (grad,) = torch.autograd.grad(gather(out, t[rows]).sum(), point)
        return grad

    with replacing(m, key, lambda _a: current[0]) as (run, _):
        total = path_sum(m, a_b, a_x, alphas, weights, gradient, row_shape=x.shape[1:],
                         batch_size=batch_size, progress=progress, desc="layer integrated_gradients")
    return (a_x - a_b) * total, gather(out_x, t), baseline_outputs, t, key
