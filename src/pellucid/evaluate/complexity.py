"""How concentrated is an explanation? Sparseness (Gini index) and complexity (entropy).

Both read only the attribution values, never the model (so they take no model; registered, they
are called ``metric(model, explanation)`` like every metric): each row's values are flattened as
they are (channels included; sum them first for a per-pixel figure) and their absolute values
``a = |φ|`` are scored. Cost: no model evaluations, one sort (sparseness) or one pass (complexity)
per row.
"""
from __future__ import annotations

import torch

from ..explanation import Explanation
from ._metric import metric, without_model
from ._score import Score

__all__ = ["sparseness", "complexity"]


def _magnitudes(explanation: Explanation) -> torch.Tensor:
    if not isinstance(explanation, Explanation):
        raise TypeError(f"expected a pellucid Explanation, got {type(explanation).__name__}")
    v = explanation.values.detach()
    return v.reshape(len(v), -1).abs().double()


@metric("sparseness", higher_is_better=True, adapt=without_model)
def sparseness(explanation: Explanation) -> Score:
    """Sparseness: the Gini index ``Σ_i (2i − d − 1) a_(i) / (d Σ_i a_(i))`` of ``a = |φ|``.

    ``a_(1) ≤ … ≤ a_(d)`` are the ``d`` magnitudes of a row in increasing order. 0 when all are
    equal, ``1 − 1/d`` (its largest value) when one entry holds everything; higher is sparser,
    read as better. NaN for an all-zero row (Quantus adds 1e-7 to every entry instead, which
    shifts every score slightly). Cost: no model evaluations. Reference: Chalasani et al. 2020,
    "Concise Explanations of Neural Networks using Adversarial Training" (the Gini index of
    Hurley & Rickard 2009, "Comparing Measures of Sparsity").
    """
    a = torch.sort(_magnitudes(explanation), dim=1).values
    d = a.shape[1]
    i = torch.arange(1, d + 1, dtype=a.dtype, device=a.device)
    gini = ((2 * i - d - 1) * a).sum(dim=1) / (d * a.sum(dim=1))
    return Score("sparseness", gini.to(_dtype(explanation)), higher_is_better=True,
                 meta={"features": d, "forward_rows": 0})


@metric("complexity", higher_is_better=False, adapt=without_model)
def complexity(explanation: Explanation) -> Score:
    """Complexity: the entropy ``−Σ_j p_j ln p_j`` of ``p = |φ| / Σ|φ|`` (in nats, ``0 ln 0 = 0``).

    0 when one entry holds everything, ``ln d`` (its largest value) when all ``d`` are equal;
    lower is simpler, read as better. NaN for an all-zero row. Cost: no model evaluations.
    Reference: Bhatt, Weller & Moura 2020, "Evaluating and Aggregating Feature-based Model
    Explanations".
    """
    a = _magnitudes(explanation)
    p = a / a.sum(dim=1, keepdim=True)
    terms = torch.where(p > 0, p * torch.log(torch.where(p > 0, p, torch.ones_like(p))), p)
    return Score("complexity", (-terms.sum(dim=1)).to(_dtype(explanation)),
                 higher_is_better=False, meta={"features": a.shape[1], "forward_rows": 0})


def _dtype(explanation: Explanation) -> torch.dtype:
    v = explanation.values
    return v.dtype if v.is_floating_point() else torch.get_default_dtype()
