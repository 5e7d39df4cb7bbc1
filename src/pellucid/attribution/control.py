"""Control "explanations" that sanity checks compare real methods against.

``random`` carries no information about the model; ``input`` is the input itself (an edge
detector's worth of information, none of it from the model). A metric that cannot tell a real
method from these is not measuring faithfulness (Adebayo et al. 2018, "Sanity Checks for
Saliency Maps").
"""
from __future__ import annotations

from typing import Any

import torch

from .._common import generator, new_seed
from ..adapters import wrap
from ..explanation import Explanation
from ..model import gather, select_target
from ..registry import register


def _control(model: Any, inputs: Any, target: Any, batch_size: int | None, make_values) -> Explanation:
    m = wrap(model, batch_size=batch_size)
    with m.explaining():
        x = m.prepare(inputs)
        out = m.outputs(x, batch_size=batch_size, progress=False)
        t = select_target(out, target)
    return Explanation(
        values=make_values(x), inputs=x, target=t, outputs=gather(out, t),
        meta={"forward_rows": len(x)},
    )


@register("random", random=True)
def random_attribution(
    model: Any, inputs: Any, *, target: Any = None, seed: int | None = None,
    batch_size: int | None = None, progress: bool | None = None,
) -> Explanation:
    """Random attribution: i.i.d. uniform values in [0, 1), a control for metrics.

    Cost: one forward pass per row (for the target and outputs). Draws from a private generator
    seeded by ``seed``.
    """
    used = new_seed(seed)

    def values(x: torch.Tensor) -> torch.Tensor:
        return torch.rand(x.shape, generator=generator(used, x.device), device=x.device,
                          dtype=x.dtype if x.is_floating_point() else torch.float32)

    e = _control(model, inputs, target, batch_size, values)
    e.meta["seed"] = used
    return e


@register("input")
def input_attribution(
    model: Any, inputs: Any, *, target: Any = None, batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """The input itself as an "attribution": a control that ignores the model entirely.

    Cost: one forward pass per row (for the target and outputs).
    """
    return _control(model, inputs, target, batch_size, lambda x: x.clone())
