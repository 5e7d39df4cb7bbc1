"""Guided backpropagation (Springenberg et al. 2015)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ...adapters import gradient_model
from ...errors import UnsupportedLayerError
from ...explanation import Explanation
from ...registry import register
from . import _backward
from ._inplace import plain_target
from .trace import Traced, original, require_module, trace

__all__ = ["guided_backprop"]


@register("guided_backprop", gradients=True)
def guided_backprop(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Guided backprop: the input gradient with negative gradients zeroed at every ReLU.

    At each ReLU the backward pass keeps ``g · 1[a > 0] · 1[g > 0]`` instead of ``g · 1[a > 0]``;
    every other operation keeps its gradient. ReLUs written as modules (``nn.ReLU``) and as calls
    (``F.relu``, ``torch.relu``, ``x.relu()``) are both found (the model is traced with
    ``torch.fx``). Cost: one forward and one backward pass per row, batched. Reference:
    Springenberg et al. 2015, "Striving for Simplicity: The All Convolutional Net"; as Captum's
    ``GuidedBackprop``.
    """
    m = gradient_model(model, "guided_backprop", batch_size)
    require_module(m, "guided_backprop")
    with m.explaining():
        x = m.prepare(inputs, as_float=True)
        m.require_single_input("guided_backprop")
        traced = trace(m.module)
        res = _backward.run(m, traced, _handlers(traced), _backward.Sinks(), x, target,
                            batch_size=batch_size, progress=progress, desc="guided_backprop")
    return Explanation(
        values=res["grad"],
        inputs=x,
        target=res["target"],
        outputs=res["outputs"],
        meta={"forward_rows": len(x), "backward_rows": len(x)},
    )


def _is_relu(traced: Traced, node: fx.Node) -> bool:
    if traced.kinds.get(node) != "relu":
        return False
    if node.op == "call_module":
        return type(traced.gm.get_submodule(node.target)) is nn.ReLU
    return node.op == "call_method" or plain_target(node) in (F.relu, torch.relu)


def _handlers(traced: Traced) -> dict[fx.Node, Any]:
    aten = [n for n in traced.gm.graph.nodes if isinstance(n.target, torch._ops.OpOverload)]
    if aten:  # a torch.export graph: its ReLUs are aten ops no rule here would see
        raise UnsupportedLayerError(
            f"guided_backprop reads a graph of aten operations ({aten[0].target}), as torch.export "
            "makes; pass the original module, or torch.export.unflatten(program)")
    handlers = {}
    for node in traced.kinds:
        if _is_relu(traced, node):
            fn = original(traced, node)

            def handler(*args: Any, _fn=fn, **kwargs: Any) -> torch.Tensor:
                y = _fn(*args, **kwargs)
                if y.requires_grad:
                    y.register_hook(lambda g: g.clamp(min=0))
                return y
            handlers[node] = handler
    return handlers
