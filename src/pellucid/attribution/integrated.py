"""Integrated Gradients (Sundararajan, Taly & Yan 2017)."""
from __future__ import annotations

from typing import Any

import torch

from .._common import resolve_baseline
from ..adapters import gradient_model
from ..explanation import Explanation
from ..registry import register
from ._layer import layer_integrated_gradients
from ._path import path_endpoints, path_rule_tensors, path_sum


@register("integrated_gradients", gradients=True, additive=True, renamed={"method": "rule"})
def integrated_gradients(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    baseline: Any = None,
    steps: int = 50,
    rule: str = "gausslegendre",
    layer: Any = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Integrated Gradients: ``(x − x') ⊙ ∫₀¹ ∂f_t(x' + α(x − x'))/∂x dα``.

    The integral is a quadrature with ``steps`` nodes (``rule``: ``gausslegendre`` — the
    default, exact for polynomials of degree ``2·steps − 1`` and so far more accurate per step on
    smooth models; along a path through a ReLU network the integrand has kinks and the rules
    converge at similar rates — or ``riemann_left``/``right``/``middle``/``trapezoid``;
    ``method=`` is its old name). Completeness ``Σ values = f_t(x) − f_t(x')`` holds up to the
    quadrature error, reported per row by ``.delta``. The target is chosen at ``x``, not along
    the path.

    ``baseline`` x' is zeros by default, or a number, one row, or one row per input. All
    ``n · steps`` path points go through the model in chunks of at most ``batch_size`` rows,
    built on the fly so memory stays bounded.

    ``layer`` (a module, its dotted name, or ``name@k`` for the k-th call of a reused module)
    attributes to that layer's output ``a`` instead:
    ``(a(x) − a(x')) ⊙ ∫₀¹ ∂f_t/∂a (a(x') + α(a(x) − a(x'))) dα``, with the path run by a hook
    that replaces the layer's output (Captum's ``LayerIntegratedGradients``). ``values`` are
    shaped like the layer's output; inputs may be integer token ids (attribute through the
    embedding layer and sum ``values`` over the last axis for one score per token).
    Completeness then holds w.r.t. the layer: ``baseline_outputs`` is the output at ``x`` with
    the layer's output set to ``a(x')``.

    Cost: ``n · steps`` forward and backward passes, plus ``2n`` forward passes for the outputs
    at the inputs and the baselines (``3n`` with ``layer``). Reference: Sundararajan et al.
    2017, "Axiomatic Attribution for Deep Networks".
    """
    m = gradient_model(model, "integrated_gradients", batch_size)
    if layer is not None:
        return _layer_ig(m, inputs, layer, target, baseline, steps, rule, batch_size, progress)
    with m.explaining():
        x, alphas, weights, base, t, outputs, baseline_outputs = path_endpoints(
            m, inputs, target, baseline, steps, rule, batch_size)

        def gradient(points: torch.Tensor, rows: torch.Tensor, _direction: torch.Tensor) -> torch.Tensor:
            return m.target_gradient(points, t[rows], rows=rows, checked=True)[0]

        total = path_sum(m, base, x, alphas, weights, gradient, batch_size=batch_size,
                         progress=progress, desc="integrated_gradients")
    n = len(x)
    return Explanation(
        values=(x - base) * total, inputs=x, target=t, outputs=outputs,
        baseline_outputs=baseline_outputs,
        meta={"forward_rows": n * steps + 2 * n, "backward_rows": n * steps},
    )


def _layer_ig(m, inputs, layer, target, baseline, steps, rule, batch_size, progress) -> Explanation:
    """:func:`integrated_gradients` with ``layer=``: see :func:`._layer.layer_integrated_gradients`."""
    with m.explaining():
        x = m.prepare(inputs)
        dtype = m.dtype if not x.is_floating_point() else x.dtype
        alphas, weights = path_rule_tensors(rule, steps, device=x.device, dtype=dtype)
        base = resolve_baseline(baseline, x)
        values, outputs, baseline_outputs, t, name = layer_integrated_gradients(
            m, x, base, layer, target, alphas=alphas, weights=weights, batch_size=batch_size,
            progress=progress)
    n = len(x)
    return Explanation(
        values=values, inputs=x, target=t, outputs=outputs, baseline_outputs=baseline_outputs,
        params={"layer": name},
        meta={"forward_rows": n * steps + 3 * n, "backward_rows": n * steps,
              "layer_shape": list(values.shape[1:])},
    )
