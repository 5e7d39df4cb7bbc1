"""Robustness of an explanation to small input noise: max- and avg-sensitivity (Yeh et al. 2019).

The explanation's own method is run again, with the same options and the same targets, on
``samples`` noisy copies of every row. All ``n · samples`` copies go through the method together,
chunk by chunk (one call per chunk of at most ``batch_size`` copies, never one per sample), and
the noise is drawn from a seeded sequence that does not depend on the chunk size.
"""
from __future__ import annotations

from typing import Any

import torch

from .._common import check_positive, check_positive_int
from ..explanation import Explanation
from ._metric import metric
from ._perturb import require_floating, rerun, seeded_rows, setup
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
    check_positive_int(samples, "samples")
    check_positive(radius, "radius")
    method, params = rerun(explanation, "sensitivity")
    m, x, t, values, seed = setup(model, explanation, metric="sensitivity", seed=seed,
                                  batch_size=batch_size)
    require_floating(x, "sensitivity")
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
        eps = _noise(seed, s.start, s.stop, x.shape[1:], radius, x.device, x.dtype)
        again = method(m, x[i] + eps, target=t[i], progress=False, **params)
        for key in cost:
            cost[key] += int(again.meta.get(key, 0))
        diff = (again.values.reshape(len(i), -1) - flat[i]).norm(dim=1).double()
        ratios[s] = diff / norms[i]
    meta = {"samples": samples, "radius": radius, "noise": "uniform", "norm": "fro",
            "method": explanation.method, "seed": seed, **cost}
    return ratios.view(n, samples), meta


@metric("max_sensitivity", higher_is_better=False, needs=("method",))
def max_sensitivity(model: Any, explanation: Explanation, *, samples: int = 50, radius: float = 0.2,
                    seed: int | None = None, batch_size: int | None = None,
                    progress: bool | None = None) -> Score:
    """Max-sensitivity: ``max_{‖ε‖∞ ≤ r} ‖φ(x + ε) − φ(x)‖₂ / ‖φ(x)‖₂``, estimated by sampling.

    The maximum over ``samples`` uniform draws of ``ε`` in the L∞ ball of radius ``radius`` (the
    defaults 50 and 0.2 are Yeh et al.'s). The explanation's method is re-run on the noisy copies
    with its own options and the explained targets. Lower is better. Cost: ``samples`` times the
    method's cost per row. Reference: Yeh et al. 2019, "On the (In)fidelity and Sensitivity of
    Explanations".
    """
    ratios, meta = sensitivities(model, explanation, samples=samples, radius=radius, seed=seed,
                                 batch_size=batch_size, progress=progress)
    return _score("max_sensitivity", ratios.max(dim=1).values, explanation, meta)


@metric("avg_sensitivity", higher_is_better=False, needs=("method",))
def avg_sensitivity(model: Any, explanation: Explanation, *, samples: int = 50, radius: float = 0.2,
                    seed: int | None = None, batch_size: int | None = None,
                    progress: bool | None = None) -> Score:
    """Avg-sensitivity: ``E_{‖ε‖∞ ≤ r} ‖φ(x + ε) − φ(x)‖₂ / ‖φ(x)‖₂``, ``ε`` uniform in the ball.

    The mean over ``samples`` draws; otherwise as :func:`max_sensitivity`. Lower is better.
    Cost: ``samples`` times the method's cost per row. Reference: Yeh et al. 2019, "On the
    (In)fidelity and Sensitivity of Explanations".
    """
    ratios, meta = sensitivities(model, explanation, samples=samples, radius=radius, seed=seed,
                                 batch_size=batch_size, progress=progress)
    return _score("avg_sensitivity", ratios.mean(dim=1), explanation, meta)


def _score(name: str, values: torch.Tensor, explanation: Explanation, meta: dict[str, Any]) -> Score:
    return Score(name, values.to(explanation.values.dtype), higher_is_better=False, meta=meta)
