"""Path integrals ∫₀¹ g(α) dα over the straight line start → end, shared by Integrated Gradients
(input and layer) and conductance.

Each quadrature rule gives nodes α_k in [0, 1] and weights w_k with Σ w_k g(α_k) ≈ ∫₀¹ g.
Gauss–Legendre is exact for polynomials of degree 2·steps − 1 and is the default; the Riemann
rules match Captum's names and nodes so results can be compared one to one. :func:`path_sum`
walks all ``n · steps`` path points in chunks of rows and accumulates the weighted sum.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .._common import check_choice, check_positive_int, resolve_baseline
from ..errors import InputError
from ..model import gather, select_target

RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def path_rule(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights ``(alphas, weights)`` of quadrature ``rule`` with ``steps`` points."""
    steps = check_positive_int(steps, "steps")
    check_choice(rule, "rule (the quadrature)", RULES)
    alphas, weights = _cached_rule(rule, steps)
    return alphas.copy(), weights.copy()


@functools.lru_cache(maxsize=64)
def _cached_rule(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    # numpy's leggauss solves an eigenproblem (~1.7 ms at 50 nodes): worth keeping.
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1.0) / 2.0, weights / 2.0
    if rule == "riemann_trapezoid":
        if steps < 2:
            raise InputError("riemann_trapezoid needs steps >= 2")
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2.0
        return np.linspace(0.0, 1.0, steps), weights
    offsets = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}
    return (np.arange(steps) + offsets[rule]) / steps, np.full(steps, 1.0 / steps)


def path_rule_tensors(
    rule: str, steps: int, *, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`path_rule` as tensors on ``device``."""
    alphas, weights = path_rule(rule, steps)
    return (
        torch.as_tensor(alphas, device=device, dtype=dtype),
        torch.as_tensor(weights, device=device, dtype=dtype),
    )


def path_endpoints(m, inputs, target, baseline, steps: int, rule: str, batch_size):
    """The shared start of a path method (IG, conductance), inside ``m.explaining()``.

    Returns ``(x, alphas, weights, base, t, outputs, baseline_outputs)``: the prepared inputs, the
    quadrature rule, the resolved baseline, the target per row and the explained output at both
    ends of the path (one forward pass over ``2n`` rows).
    """
    x = m.prepare(inputs, as_float=True)
    alphas, weights = path_rule_tensors(rule, steps, device=x.device, dtype=x.dtype)
    base = resolve_baseline(baseline, x)
    n = len(x)
    rows = torch.arange(n, device=x.device)
    ends = m.outputs(torch.cat([x, base]), rows=torch.cat([rows, rows]), batch_size=batch_size,
                     progress=False)
    t = select_target(ends[:n], target)
    return x, alphas, weights, base, t, gather(ends[:n], t), gather(ends[n:], t)


def path_sum(
    m: Any, start: torch.Tensor, end: torch.Tensor, alphas: torch.Tensor, weights: torch.Tensor,
    integrand: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], *,
    row_shape: Sequence[int] | None = None, batch_size: int | None, progress: bool | None,
    desc: str,
) -> torch.Tensor:
    """``Σ_k w_k · integrand(start + α_k (end − start))`` for every row: the quadrature of a path
    integral, over all ``n · steps`` points in chunks of at most ``batch_size`` rows.

    ``integrand(points, rows, direction)`` gets a chunk of path points, the row each belongs to
    and ``end − start`` of those rows, and returns one value per point (any shape with the points
    first); the sum has the integrand's shape per row. ``row_shape`` sizes the chunks (default:
    the points' own). Points are built on the fly, so memory is one chunk, never ``n · steps``
    rows. Cost: whatever ``integrand`` costs on ``n · steps`` rows.
    """
    n, steps = len(start), len(alphas)
    diff = end - start
    shape = (-1,) + (1,) * (start.dim() - 1)
    total: torch.Tensor | None = None
    for chunk, _ in m.chunks(n * steps, row_shape if row_shape is not None else start.shape[1:],
                             batch_size=batch_size, progress=progress, desc=desc):
        flat = torch.arange(chunk.start, chunk.stop, device=start.device)
        rows, k = flat // steps, flat % steps
        direction = diff[rows]
        part = integrand(start[rows] + alphas[k].view(shape) * direction, rows, direction)
        if total is None:
            total = torch.zeros((n, *part.shape[1:]), dtype=part.dtype, device=part.device)
        total.index_add_(0, rows, part * weights[k].view((-1,) + (1,) * (part.dim() - 1)))
    assert total is not None  # n * steps >= 1
    return total
