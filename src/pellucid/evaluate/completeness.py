"""Completeness: do the attributions add up to the change in the output?"""
from __future__ import annotations

from typing import Any

import torch

from ..explanation import Explanation
from ..model import gather
from ._metric import metric
from ._perturb import baseline_rows, setup
from ._score import Score

__all__ = ["completeness"]


@metric("completeness", higher_is_better=False)
def completeness(
    model: Any,
    explanation: Explanation,
    *,
    baseline: Any = 0.0,
    rtol: float = 0.01,
    atol: float = 1e-6,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Score:
    """Completeness gap ``|Σ_j φ_j − (f_t(x) − f_t(x'))|`` per row (lower is better).

    The axiom that additive methods (IG, DeepLIFT, LRP-0, exact Shapley) satisfy with respect
    to their baseline x' (Sundararajan et al. 2017; Shrikumar et al. 2017). The raw output
    (logit) is used, as the methods explain it. ``meta["passed"]`` holds, per row, whether the
    gap is within ``atol + rtol·|f_t(x) − f_t(x')|``: the check is made with a tolerance,
    because a quadrature or float sum never hits the difference exactly (Quantus' Completeness
    compares the floats with ``==`` and so fails even exact methods). Cost: 2 forward passes
    per row.
    """
    m, x, t, values, _ = setup(model, explanation, metric="completeness", batch_size=batch_size)
    base, described = baseline_rows(baseline, x, seed=None, metric="completeness")
    with m.explaining():
        out = m.outputs(torch.cat([x, base]), batch_size=batch_size, progress=progress)
    n = len(x)
    change = gather(out[:n], t) - gather(out[n:], t)
    gap = (values.reshape(n, -1).sum(dim=1) - change).abs()
    passed = gap <= atol + rtol * change.abs()
    return Score("completeness", gap, higher_is_better=False,
                 meta={**described, "rtol": rtol, "atol": atol, "passed": passed,
                       "forward_rows": 2 * n})
