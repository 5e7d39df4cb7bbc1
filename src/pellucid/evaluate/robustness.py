"""Robustness of an explanation to small input noise: max- and avg-sensitivity (Yeh et al. 2019).

The explanation's own method is run again, with the same options and the same targets, on
``samples`` noisy copies of every row. All ``n · samples`` copies go through the method together,
chunk by chunk (one call per chunk of at most ``batch_size`` copies, never one per sample), and
the noise is drawn from a seeded sequence that does not depend on the chunk size.
"""
from __future__ import annotations

from typing import Any

import torch

from .._common import Stopwatch
from ..errors import PellucidError
from ..explanation import Explanation
from ..registry import get
from ._perturb import check_positive, new_seed, require_floating, seeded_rows, setup
from ._score import Score

__all__ = ["max_sensitivity", "avg_sensitivity", "sensitivities"]


def _noise(seed: int, start: int, stop: int, shape: tuple[int, ...], radius: float,
           device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Rows ``start:stop`` of i.i.d. uniform noise in ``[-radius, radius]``, shaped ``shape``."""
    return seeded_rows(seed, start, stop, lambda g, k: torch.rand(
        (k,) + tuple(shape), generator=g, device=device, dtype=dtype), device) * (2 * radius) - radius


def sensitivities(
    model: Any,
    explanation: Explanation,
    *,
    samples: int = 50,
    radius: float = 0.2,
    seed: int | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """``‖φ(x + ε) − φ(x)‖₂ / ‖φ(x)‖₂`` for ``samples`` draws of ``ε`` per row: ``(n, samples)``.

    ``ε`` is uniform in the L∞ ball of radius ``radius`` (every entry in ``[-radius, radius]``),
    drawn from ``seed``. ``φ(x + ε)`` is the explanation's method (``explanation.method``) run
    with ``explanation.params`` and the target fixed to ``explanation.target``. The norms are
    Frobenius norms over all of a row's attribution values. NaN for a row whose ``φ(x)`` is all
    zeros. Also returns the meta (seed, cost) that :func:`max_sensitivity` reports.
    """
    clock = Stopwatch()
    check_positive("samples", samples)
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    if not explanation.method:
        raise PellucidError(
            "sensitivity re-runs the explanation's method on noisy inputs, but this explanation "
            "names no method; build it with a registered pellucid method"
        )
    info = get(explanation.method)
    used_seed = new_seed(seed)
    m, x, t, values = setup(model, explanation, batch_size=batch_size, metric="sensitivity")
    require_floating(x, "sensitivity")
    params = {k: v for k, v in explanation.params.items() if k not in ("target", "progress")}
    if batch_size is not None:
        params["batch_size"] = batch_size
    n = len(x)
    flat = values.reshape(n, -1)
    norms = flat.norm(dim=1).double()
    ratios = torch.empty(n * samples, dtype=torch.float64, device=x.device)
    cost = {"forward_rows": 0, "backward_rows": 0}
    for s, _ in m.chunks(n * samples, x.shape[1:], batch_size=batch_size, progress=progress,
                      desc="sensitivity"):
        i = torch.arange(s.start, s.stop, device=x.device) // samples
        eps = _noise(used_seed, s.start, s.stop, x.shape[1:], radius, x.device, x.dtype)
        again = info.function(m, x[i] + eps, target=t[i], progress=False, **params)
        for key in cost:
            cost[key] += int(again.meta.get(key, 0))
        diff = (again.values.reshape(len(i), -1) - flat[i]).norm(dim=1).double()
        ratios[s] = diff / norms[i]
    meta = {"samples": samples, "radius": radius, "noise": "uniform", "norm": "fro",
            "method": explanation.method, "seed": used_seed, **cost, "seconds": clock.seconds()}
    return ratios.view(n, samples), meta


def max_sensitivity(
    model: Any,
    explanation: Explanation,
    *,
    samples: int = 50,
    radius: float = 0.2,
    seed: int | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Score:
    """Max-sensitivity: ``max_{‖ε‖∞ ≤ r} ‖φ(x + ε) − φ(x)‖₂ / ‖φ(x)‖₂``, estimated by sampling.

    The maximum over ``samples`` uniform draws of ``ε`` in the L∞ ball of radius ``radius`` (the
    defaults 50 and 0.2 are Yeh et al.'s). The explanation's method is re-run on the noisy copies
    with its own options and the explained targets. Lower is better. Cost: ``samples`` times the
    method's cost per row. Reference: Yeh et al. 2019, "On the (In)fidelity and Sensitivity of
    Explanations".
    """
    ratios, meta = sensitivities(model, explanation, samples=samples, radius=radius, seed=seed,
                                 batch_size=batch_size, progress=progress)
    return Score("max_sensitivity", ratios.max(dim=1).values.to(explanation.values.dtype),
                 higher_is_better=False, meta=meta)


def avg_sensitivity(
    model: Any,
    explanation: Explanation,
    *,
    samples: int = 50,
    radius: float = 0.2,
    seed: int | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Score:
    """Avg-sensitivity: ``E_{‖ε‖∞ ≤ r} ‖φ(x + ε) − φ(x)‖₂ / ‖φ(x)‖₂``, ``ε`` uniform in the ball.

    The mean over ``samples`` draws; otherwise as :func:`max_sensitivity`. Lower is better.
    Cost: ``samples`` times the method's cost per row. Reference: Yeh et al. 2019, "On the
    (In)fidelity and Sensitivity of Explanations".
    """
    ratios, meta = sensitivities(model, explanation, samples=samples, radius=radius, seed=seed,
                                 batch_size=batch_size, progress=progress)
    return Score("avg_sensitivity", ratios.mean(dim=1).to(explanation.values.dtype),
                 higher_is_better=False, meta=meta)
