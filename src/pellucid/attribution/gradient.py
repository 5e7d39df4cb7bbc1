"""Plain gradient attributions: saliency and gradient × input.

Both cost one forward and one backward pass per row, batched.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..adapters import gradient_model
from ..explanation import Explanation
from ..registry import register


@register("saliency", gradients=True)
def saliency(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    abs: bool = True,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Saliency: the gradient of the explained output with respect to the input.

    ``values = |∂f_t(x)/∂x|`` (the signed gradient with ``abs=False``). Cost: one forward and one
    backward pass per row. Reference: Simonyan, Vedaldi & Zisserman 2013, "Deep Inside
    Convolutional Networks".

    >>> import torch, pellucid
    >>> net = torch.nn.Linear(3, 2)
    >>> pellucid.saliency(net, torch.ones(4, 3), target=1).values.shape
    torch.Size([4, 3])
    """
    return _from_input_gradients(
        "saliency", lambda x, g: g.abs() if abs else g, model, inputs, target=target,
        batch_size=batch_size, progress=progress,
    )


@register("gradient_x_input", gradients=True)
def gradient_x_input(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Gradient × input: ``values = x ⊙ ∂f_t(x)/∂x``.

    Exact for a linear model with a zero baseline (``w ⊙ x``), and equal to ε-LRP and DeepLIFT
    (zero baseline) on ReLU networks without biases. Cost: one forward and one backward per row.
    Reference: Shrikumar et al. 2016, "Not Just a Black Box"; Ancona et al. 2018.
    """
    return _from_input_gradients(
        "gradient_x_input", lambda x, g: g * x, model, inputs, target=target,
        batch_size=batch_size, progress=progress,
    )


def _from_input_gradients(
    name: str,
    combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    model: Any,
    inputs: Any,
    *,
    target: Any,
    batch_size: int | None,
    progress: bool | None,
) -> Explanation:
    """An explanation whose values are ``combine(x, ∂f_t/∂x)``: one forward+backward per row."""
    m = gradient_model(model, name, batch_size)
    with m.explaining():
        x = m.prepare(inputs, as_float=True)
        grads, outputs, t = m.gradients(x, target, batch_size=batch_size, progress=progress)
    return Explanation(
        values=combine(x, grads),
        inputs=x,
        target=t,
        outputs=outputs,
        meta={"forward_rows": len(x), "backward_rows": len(x)},
    )
