"""Quadrature rules for path integrals ∫₀¹ g(α) dα over the straight line baseline → input.

Each rule gives nodes α_k in [0, 1] and weights w_k with Σ w_k g(α_k) ≈ ∫₀¹ g. Gauss–Legendre is
exact for polynomials of degree 2·steps − 1 and is the default; the Riemann rules match Captum's
names and nodes so results can be compared one to one.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def path_rule(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights ``(alphas, weights)`` of rule ``method`` with ``steps`` points."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    alphas, weights = _cached_rule(method, steps)
    return alphas.copy(), weights.copy()


@functools.lru_cache(maxsize=64)
def _cached_rule(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    # numpy's leggauss solves an eigenproblem (~1.7 ms at 50 nodes): worth keeping.
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1.0) / 2.0, weights / 2.0
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2.0
        return np.linspace(0.0, 1.0, steps), weights
    offsets = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}
    if method not in offsets:
        raise ValueError(f"unknown integration method {method!r}; choose one of {', '.join(RULES)}")
    return (np.arange(steps) + offsets[method]) / steps, np.full(steps, 1.0 / steps)


def path_rule_tensors(
    method: str, steps: int, *, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`path_rule` as tensors on ``device``."""
    alphas, weights = path_rule(method, steps)
    return (
        torch.as_tensor(alphas, device=device, dtype=dtype),
        torch.as_tensor(weights, device=device, dtype=dtype),
    )


def path_endpoints(m, inputs, target, baseline, steps: int, method: str, batch_size):
    """The shared start of a path method (IG, conductance), inside ``m.explaining()``.

    Returns ``(x, alphas, weights, base, t, outputs, baseline_outputs)``: the prepared inputs, the
    quadrature rule, the resolved baseline, the target per row and the explained output at both
    ends of the path (one forward pass over ``2n`` rows).
    """
    from ..model import gather, select_target
    from ._common import resolve_baseline

    x = m.prepare(inputs, as_float=True)
    alphas, weights = path_rule_tensors(method, steps, device=x.device, dtype=x.dtype)
    base = resolve_baseline(baseline, x)
    n = len(x)
    ends = m.outputs(torch.cat([x, base]), batch_size=batch_size, progress=False)
    t = select_target(ends[:n], target)
    return x, alphas, weights, base, t, gather(ends[:n], t), gather(ends[n:], t)
