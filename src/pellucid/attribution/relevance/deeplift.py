"""DeepLIFT with the rescale rule (Shrikumar, Greenside & Kundaje 2017)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..._common import resolve_baseline
from ...adapters import gradient_model
from ...explanation import Explanation
from ...registry import register
from . import _backward
from .trace import Traced, original, require_module, trace

__all__ = ["deeplift"]

#: Below this |Δ input| the rescale multiplier falls back to the gradient (as Captum does).
_EPS = 1e-10


@register("deeplift", gradients=True, additive=True)
def deeplift(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    baseline: Any = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """DeepLIFT (rescale rule): ``values = (x − x') ⊙ m``, m the gradient with Δy/Δa multipliers.

    ``m`` is the backward pass in which every nonlinearity ``y = f(a)`` has the multiplier
    ``Δy/Δa = (f(a) − f(a')) / (a − a')`` instead of ``f'(a)`` (the gradient where
    ``|Δa| < 1e-10``).

    Linear layers keep their gradient, so summation-to-delta holds exactly:
    ``Σ values = f_t(x) − f_t(x')`` per row (``.delta`` ≈ 0). ``baseline`` x' is zeros by default,
    or a number, one row, or one row per input. Elementwise activations of any kind (ReLU, tanh,
    GELU, ...) get the rescale rule, MaxPool1d/2d/3d Captum's max pooling rule; adaptive max
    pooling, LayerNorm and other operations without a rule raise
    :class:`~pellucid.errors.UnsupportedLayerError`. The model is traced (``torch.fx``), so
    functional activations are covered too, each call of a module used at several places (one
    ``nn.ReLU`` per torchvision ResNet block) gets its own multipliers, and in-place
    activations (``nn.ReLU(inplace=True)``, ``x.relu_()``) run out of place so that the rule
    sees their input (an overwrite read through a view raises ``UnsupportedLayerError``).

    Cost: one forward and one backward pass over inputs and baselines together (2n rows).
    Reference: Shrikumar et al. 2017, "Learning Important Features Through Propagating
    Activation Differences"; as Captum's ``DeepLift`` (Ancona et al. 2018).
    """
    m = gradient_model(model, "deeplift", batch_size)
    require_module(m, "deeplift")
    with m.explaining():
        x = m.prepare(inputs, as_float=True)
        m.require_single_input("deeplift")
        base = resolve_baseline(baseline, x)
        traced = trace(m.module)
        handlers = _handlers(traced)
        # DeepLIFT needs both halves in one pass: run the chunks at half the usual rows.
        size = m.batch_rows(x.shape[1:], batch_size=batch_size)
        res = _backward.run(m, traced, handlers, _backward.Sinks(), x, target,
                            batch_size=max(1, size // 2), progress=progress, desc="deeplift",
                            reference=base)
    return Explanation(
        values=(x - base) * res["grad"],
        inputs=x,
        target=res["target"],
        outputs=res["outputs"],
        baseline_outputs=res["reference_outputs"],
        meta={"forward_rows": 2 * len(x), "backward_rows": 2 * len(x)},
    )


def _handlers(traced: Traced) -> dict[fx.Node, Any]:
    hint = ("DeepLIFT's rescale rule covers elementwise activations and MaxPool1d/2d/3d; linear "
            "layers, BatchNorm, "
            "sums, average pooling and reshapes keep their gradient. Replace the operation, or use "
            "integrated_gradients, which needs no rules.")
    pools = {n: _pool_call(traced, n) for n in traced.nodes("maxpool")}
    bad = [n for n in traced.kinds if traced.kinds[n] in ("unknown", "layernorm", "embedding")
           or (n in pools and pools[n] is None)]
    _backward.refuse(traced, bad, "deeplift", hint)
    handlers = {}
    for node, kind in traced.kinds.items():
        if kind in ("relu", "activation"):
            handlers[node] = _rescale(original(traced, node))
        elif kind == "maxpool":
            handlers[node] = _maxpool(pools[node])
    return handlers


def _pool_call(traced: Traced, node: fx.Node):
    """``f(a) -> (pooled, indices)`` for a MaxPool1d/2d/3d node (module or call), else None."""
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
    if node.op == "call_module":
        mod = traced.gm.get_submodule(node.target)
        dims = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}.get(type(mod))
        if dims is None:
            return None
        return lambda a: pool[dims](a, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                                    ceil_mode=mod.ceil_mode, return_indices=True)
    if node.op == "call_function" and node.target in pool.values():
        fn = node.target

        def call(a, *args, **kwargs):
            kwargs = {k: v for k, v in kwargs.items() if k not in ("input", "return_indices")}
            return fn(a, *args, **kwargs, return_indices=True)
        return call
    return None


def _gather(a: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``a`` at max pooling's ``indices`` (positions in the flattened spatial dimensions)."""
    return a.flatten(2).gather(2, indices.flatten(2)).view_as(indices)


def _maxpool(pool):
    """DeepLIFT's max pooling rule, as Captum implements it: the output difference of each window
    goes back in two parts, ``max(y, y') − y'`` to the input's maximum and ``y − max(y, y')`` to
    the baseline's, each divided by the input difference there (the gradient where that is
    below 1e-10). Summation to delta holds."""

    def handler(a: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        y, idx = pool(a, *args, **kwargs)
        a_x, a_r = a.chunk(2)
        (y_x, y_r), (i_x, i_r) = y.detach().chunk(2), idx.chunk(2)
        with torch.no_grad():
            top = torch.maximum(y_x, y_r)
            da = a_x - a_r
            small = da.abs() < _EPS
            inv = torch.where(small, torch.zeros_like(da), 1 / torch.where(small, torch.ones_like(da), da))
        scaled = a_x * inv
        h = _gather(scaled, i_x) * (top - y_r) + _gather(scaled, i_r) * (y_x - top)
        plain = _gather(torch.where(small, a_x, a_x.detach()), i_x)
        out_x = y_x + (h - h.detach()) + (plain - plain.detach())
        return torch.cat([out_x, y_r])
    return handler


def _rescale(fn):
    def handler(*args: Any, **kwargs: Any) -> torch.Tensor:
        a = args[0] if args else kwargs["input"]
        y = fn(*args, **kwargs)
        a_x, a_r = a.chunk(2)
        y_x, y_r = y.chunk(2)
        da, dy = (a_x - a_r).detach(), (y_x - y_r).detach()
        small = da.abs() < _EPS
        multiplier = dy / torch.where(small, torch.ones_like(da), da)
        rescaled = y_x.detach() + (a_x - a_x.detach()) * multiplier
        # Near Δa = 0 the gradient of f at the input itself (Captum's choice).
        out_x = torch.where(small, y_x, rescaled)
        return torch.cat([out_x, y_r.detach()])
    return handler
