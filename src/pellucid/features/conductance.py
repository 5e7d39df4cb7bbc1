"""Conductance: how much of a prediction flows through each unit of a layer (Dhamdhere, Sundararajan
& Yan 2018, "How Important Is a Neuron?").

For a unit ``y_i`` of a hidden layer, the conductance is Integrated Gradients' path integral
split at that unit:

    Cond_i(x) = ∫₀¹ ∂F/∂y_i (x_α) · d y_i(x_α)/dα dα,   x_α = x' + α (x − x'),

so ``Σ_i Cond_i = F(x) − F(x')``: summed over all units of a layer (a layer every path crosses)
it equals the total of input Integrated Gradients. ``∂F/∂y_i`` is a backward pass from the
output to the layer; ``dy_i/dα = J_y(x_α)(x − x')`` is a Jacobian–vector product, computed
exactly by forward-mode automatic differentiation during the same forward pass (the layer's
output then re-enters the model as a fresh leaf, so the backward stops at the layer). With the
same quadrature the completeness gap is that of IG with the same steps — the per-step sums are
identical by the chain rule. (Captum's ``LayerConductance`` instead takes finite differences of
``y`` between consecutive path points, a first-order rule: it converges to the same values as
its steps grow.)

Cost: ``n · steps`` forward passes with forward-mode tangents up to the layer, and backward
passes from the output to the layer, plus ``2n`` plain forward passes.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from ..attribution._common import Stopwatch, gradient_model
from ..attribution._layer import check_once, layer_name, replacing
from ..attribution._path import path_endpoints
from ..errors import InputError, LayerError, NotDifferentiableError
from ..explanation import Explanation
from ..model import gather
from ..registry import register

__all__ = ["conductance", "top_units"]


@register("conductance", gradients=True, layer=True, additive=True)
def conductance(
    model: Any,
    inputs: Any,
    *,
    layer: str | nn.Module,
    target: Any = None,
    baseline: Any = None,
    steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Conductance of every unit of ``layer``: ``∫ ∂F_t/∂y_i · dy_i/dα dα`` along the IG path.

    ``values`` are shaped like the layer's output ``(n, *layer shape)`` (rank units with
    :func:`top_units`); ``Σ values = F_t(x) − F_t(x')`` per row up to the quadrature error
    (``.delta``). ``baseline``, ``steps`` and ``method`` as for
    :func:`~pellucid.integrated_gradients`. Inputs must be floats (forward-mode derivatives do
    not pass through token ids: for text, use layers after the embedding or IG with ``layer=``).
    Cost: ``n · steps`` forward (with tangents) and partial backward passes.
    """
    clock = Stopwatch()
    m = gradient_model(model, "conductance", batch_size)
    module = m.layer(layer)
    name = layer_name(m, module)
    with m.explaining():
        x, alphas, weights, base, t, outputs, baseline_outputs = path_endpoints(
            m, inputs, target, baseline, steps, method, batch_size)
        n = len(x)
        diff = x - base
        total: torch.Tensor | None = None
        shape = (-1,) + (1,) * (x.dim() - 1)
        for s in m.chunks(n * steps, x.shape[1:], batch_size=batch_size, progress=progress,
                          desc="conductance"):
            flat = torch.arange(s.start, s.stop, device=x.device)
            rows, k = flat // steps, flat % steps
            points = base[rows] + alphas[k].view(shape) * diff[rows]
            part = _chunk(m, module, name, points, diff[rows], t[rows])
            if total is None:
                total = torch.zeros((n, *part.shape[1:]), dtype=part.dtype, device=part.device)
            total.index_add_(0, rows, part * weights[k].view((-1,) + (1,) * (part.dim() - 1)))
    return Explanation(
        values=total, inputs=x, target=t, outputs=outputs, baseline_outputs=baseline_outputs,
        method="conductance",
        params={"layer": name, "target": target, "baseline": baseline, "steps": steps,
                "method": method, "batch_size": batch_size},
        kind=None,
        meta={"forward_rows": n * steps + 2 * n, "backward_rows": n * steps,
              "layer_shape": list(total.shape[1:]), "seconds": clock.seconds()},
    )


def _chunk(m: Any, module: nn.Module, name: str, points: torch.Tensor, direction: torch.Tensor,
           target: torch.Tensor) -> torch.Tensor:
    """``∂F/∂y ⊙ J_y · direction`` at each point: one forward (with tangents) and a backward."""
    leaves: list[torch.Tensor] = []
    tangents: list[Any] = []

    def cut(a: torch.Tensor) -> torch.Tensor:
        primal, tangent = fwAD.unpack_dual(a)
        tangents.append(tangent)
        leaf = primal.detach().requires_grad_(True)
        leaves.append(leaf)
        return leaf

    with fwAD.dual_level():
        dual = fwAD.make_dual(points, direction)
        with torch.enable_grad(), replacing(module, name, cut) as calls:
            try:
                out = m.forward(dual)
            except RuntimeError as err:  # an op without a forward-mode derivative
                raise NotDifferentiableError(
                    f"conductance needs forward-mode derivatives up to layer {name!r}, and an "
                    f"operation before it has none: {err}") from err
            check_once(calls, name)
            if tangents[0] is None:
                raise LayerError(f"layer {name!r} does not depend on the inputs; it has no conductance")
            y = gather(out, target)
            (grad,) = torch.autograd.grad(y.sum(), leaves[0])
        return (grad * tangents[0]).detach()


def top_units(expl: Explanation, k: int = 10, *, per: str = "channel", absolute: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` units with the largest conductance, averaged over the explanation's rows.

    ``per="channel"`` sums each channel (axis 1) over its positions — node importance of a
    convolutional channel or a linear unit; ``per="unit"`` ranks every element of the layer's
    output and returns multi-indices ``(k, ndim)``. ``absolute`` ranks by magnitude (units that
    push against the prediction count too). Returns ``(indices, scores)``.
    """
    v = expl.values.detach().mean(0)
    if per == "channel":
        scores = v.reshape(v.shape[0], -1).sum(1) if v.dim() > 1 else v
    elif per == "unit":
        scores = v.flatten()
    else:
        raise InputError(f"per must be 'channel' or 'unit'; got {per!r}")
    k = min(int(k), scores.numel())
    _, idx = (scores.abs() if absolute else scores).topk(k)
    picked = scores[idx]
    if per == "unit":
        idx = torch.stack(torch.unravel_index(idx, v.shape), dim=1)
    return idx, picked
