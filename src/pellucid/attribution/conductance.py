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

from .._deprecation import renamed
from .._hooks import layer_key, replacing
from ..adapters import gradient_model
from ..errors import InputError, LayerError, NotDifferentiableError
from ..explanation import Explanation
from ..model import gather
from ..registry import register
from ._path import path_endpoints, path_sum

__all__ = ["conductance", "top_units"]


@register("conductance", gradients=True, layer=True, additive=True, renamed={"method": "rule"})
def conductance(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    layer: str | nn.Module,
    baseline: Any = None,
    steps: int = 50,
    rule: str = "gausslegendre",
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Conductance of every unit of ``layer``: ``∫ ∂F_t/∂y_i · dy_i/dα dα`` along the IG path.

    ``values`` are shaped like the layer's output ``(n, *layer shape)`` (rank units with
    :func:`top_units`); ``Σ values = F_t(x) − F_t(x')`` per row up to the quadrature error
    (``.delta``). ``baseline``, ``steps`` and ``rule`` as for
    :func:`~pellucid.integrated_gradients`. Inputs must be floats (forward-mode derivatives do
    not pass through token ids: for text, use layers after the embedding or IG with ``layer=``).
    Cost: ``n · steps`` forward (with tangents) and partial backward passes.
    """
    m = gradient_model(model, "conductance", batch_size)
    key = layer_key(m, layer)
    with m.explaining():
        x, alphas, weights, base, t, outputs, baseline_outputs = path_endpoints(
            m, inputs, target, baseline, steps, rule, batch_size)

        def flow(points: torch.Tensor, rows: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
            return _chunk(m, key, points, direction, t[rows], rows)

        total = path_sum(m, base, x, alphas, weights, flow, batch_size=batch_size,
                         progress=progress, desc="conductance")
    n = len(x)
    return Explanation(
        values=total, inputs=x, target=t, outputs=outputs, baseline_outputs=baseline_outputs,
        params={"layer": key}, kind=None,
        meta={"forward_rows": n * steps + 2 * n, "backward_rows": n * steps,
              "layer_shape": list(total.shape[1:])},
    )


def _chunk(m: Any, name: str, points: torch.Tensor, direction: torch.Tensor,
           target: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
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
        with torch.enable_grad(), replacing(m, name, cut) as (run, _):
            try:
                out = m.forward(dual, rows)
            except RuntimeError as err:  # an op without a forward-mode derivative
                raise NotDifferentiableError(
                    f"conductance needs forward-mode derivatives up to layer {name!r}, and an "
                    f"operation before it has none: {err}") from err
            run.check_once(name)
            if tangents[0] is None:
                raise LayerError(f"layer {name!r} does not depend on the inputs; it has no conductance")
            y = gather(out, target)
            (grad,) = torch.autograd.grad(y.sum(), leaves[0])
        return (grad * tangents[0]).detach()


@renamed(expl="explanation")
def top_units(explanation: Explanation, k: int = 10, *, per: str = "channel", absolute: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` units with the largest conductance, averaged over the explanation's rows.

    ``per="channel"`` sums each channel (axis 1) over its positions — node importance of a
    convolutional channel or a linear unit; ``per="unit"`` ranks every element of the layer's
    output and returns multi-indices ``(k, ndim)``. ``absolute`` ranks by magnitude (units that
    push against the prediction count too). Returns ``(indices, scores)``.
    """
    v = explanation.values.detach().mean(0)
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
