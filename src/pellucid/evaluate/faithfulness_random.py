"""Faithfulness under random perturbations: faithfulness correlation (Bhatt et al. 2020) and
infidelity (Yeh et al. 2019).

Both compare what the attribution predicts for a random perturbation (the sum of attributions it
touches) with what the model does (the drop of the explained output). All ``n · samples``
perturbed rows are drawn chunk by chunk from a seeded sequence that does not depend on the chunk
size, and each chunk is one forward pass.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._common import check_choice, check_positive, check_positive_int
from ..errors import InputError
from ..explanation import Explanation
from ._metric import metric
from ._perturb import (
    Setup,
    baseline_rows,
    explained_output,
    require_floating,
    resolve_output,
    seeded_rows,
    setup,
    unit_scores,
    values_like_inputs,
)
from ._score import Score

__all__ = ["faithfulness_correlation", "infidelity"]

PERTURBATIONS = ("gaussian", "square")


def _subsets(seed: int, start: int, stop: int, units: int, size: int,
             device: torch.device) -> torch.Tensor:
    """Masks ``(stop - start, units)`` of uniformly random subsets of ``size`` units."""
    def draw(g: torch.Generator, rows: int) -> torch.Tensor:
        keys = torch.rand(rows, units, generator=g, device=device)
        mask = torch.zeros(rows, units, dtype=torch.bool, device=device)
        return mask.scatter_(1, keys.topk(size, dim=1).indices, True)

    return seeded_rows(seed, start, stop, draw, device)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the rows of ``a`` and ``b``; NaN where either is constant."""
    a = a.double() - a.double().mean(dim=1, keepdim=True)
    b = b.double() - b.double().mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.square().sum(dim=1) * b.square().sum(dim=1)).sqrt()


def _sampled_drops(
    run: Setup, samples: int, output: str | None, perturb: Callable[[slice, torch.Tensor], Any],
    *, batch_size: int | None, progress: bool | None, desc: str,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """What the attribution predicts and what the model does, for ``samples`` draws per row.

    Draw ``k`` of row ``i = k // samples`` is made by ``perturb(draws, i) -> (rows, predicted)``
    for each chunk ``draws`` of the ``n · samples`` draws; the drop is ``f_t(x) − f_t(rows)``.
    Returns ``(predicted, drops)`` shaped ``(n, samples)`` in float64 and the output read.
    """
    m, x, t = run.model, run.inputs, run.target
    f0 = m.outputs(x, batch_size=batch_size, progress=False)
    used = resolve_output(output, f0.shape[1])
    f0 = explained_output(f0, t, used)
    n = len(x)
    predicted = torch.empty(n * samples, dtype=torch.float64, device=x.device)
    drops = torch.empty_like(predicted)
    with torch.no_grad():
        for s, _ in m.chunks(n * samples, x.shape[1:], batch_size=batch_size, progress=progress,
                             desc=desc):
            i = torch.arange(s.start, s.stop, device=x.device) // samples
            rows, predicted[s] = perturb(s, i)
            drops[s] = (f0[i] - explained_output(m.forward(rows), t[i], used)).double()
    return predicted.view(n, samples), drops.view(n, samples), used


@metric("faithfulness_correlation", higher_is_better=True)
def faithfulness_correlation(
    model: Any,
    explanation: Explanation,
    *,
    subset_size: int,
    samples: int = 100,
    baseline: Any = 0.0,
    output: str | None = "logit",
    seed: int | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Score:
    """Faithfulness correlation: ``corr_S(Σ_{j∈S} φ_j, f_t(x) − f_t(x with x_S = baseline))``.

    Pearson correlation over ``samples`` random subsets ``S`` of ``subset_size`` units (pixels,
    with the attribution summed over channels, for images; entries otherwise), drawn uniformly
    without replacement from ``seed``. Higher is better (1: the attribution sums predict the
    output drops exactly, up to an affine map); NaN for a row whose sums or drops do not vary.
    ``output`` is the raw output by default, the quantity pellucid's attributions explain
    (``"probability"`` reads the softmax). Cost: ``n · (samples + 1)`` forward passes. Reference:
    Bhatt, Weller & Moura 2020, "Evaluating and Aggregating Feature-based Model Explanations".
    """
    check_positive_int(samples, "samples")
    run = setup(model, explanation, metric="faithfulness_correlation", seed=seed,
                batch_size=batch_size)
    m, x, values = run.model, run.inputs, run.values
    with m.explaining():
        base, base_meta = baseline_rows(baseline, x, seed=run.seed, metric="faithfulness_correlation")
        scores = unit_scores(values, x, "faithfulness_correlation")
        flat_scores = scores.reshape(len(x), -1)
        units = flat_scores.shape[1]
        if check_positive_int(subset_size, "subset_size") > units:
            raise InputError(f"subset_size must be at most the number of units ({units}), "
                             f"got {subset_size}")

        def perturb(draws: slice, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mask = _subsets(run.seed, draws.start, draws.stop, units, subset_size, x.device)
            rows = torch.where(mask.view((-1,) + scores.shape[1:]), base[i], x[i])
            return rows, (flat_scores[i] * mask).sum(dim=1).double()

        sums, drops, used = _sampled_drops(run, samples, output, perturb, batch_size=batch_size,
                                           progress=progress, desc="faithfulness_correlation")
    corr = _pearson(sums, drops).to(m.dtype)
    meta = {"subset_size": subset_size, "samples": samples, "units": units, **base_meta,
            "output": used, "seed": run.seed, "forward_rows": len(x) * (samples + 1)}
    return Score("faithfulness_correlation", corr, higher_is_better=True, meta=meta)


def gaussian_noise(seed: int, start: int, stop: int, shape: tuple[int, ...], sigma: float,
                   device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Rows ``start:stop`` of i.i.d. ``N(0, sigma²)`` noise shaped ``shape``, seeded."""
    return sigma * seeded_rows(seed, start, stop, lambda g, k: torch.randn(
        (k,) + tuple(shape), generator=g, device=device, dtype=dtype), device)


def _square_masks(seed: int, start: int, stop: int, side: int, shape: tuple[int, int],
                  device: torch.device) -> torch.Tensor:
    """Masks ``(stop - start, 1, H, W)`` of a ``side x side`` square at a uniform position."""
    height, width = shape

    def draw(g: torch.Generator, rows: int) -> torch.Tensor:
        top = torch.randint(0, height - side + 1, (rows, 1, 1, 1), generator=g, device=device)
        left = torch.randint(0, width - side + 1, (rows, 1, 1, 1), generator=g, device=device)
        r = torch.arange(height, device=device).view(1, 1, -1, 1)
        c = torch.arange(width, device=device).view(1, 1, 1, -1)
        return (r >= top) & (r < top + side) & (c >= left) & (c < left + side)

    return seeded_rows(seed, start, stop, draw, device)


@metric("infidelity", higher_is_better=False)
def infidelity(
    model: Any,
    explanation: Explanation,
    *,
    samples: int = 100,
    perturbation: str = "gaussian",
    noise: float = 0.2,
    square: int = 4,
    baseline: Any = 0.0,
    normalize: bool = True,
    multiply_by_inputs: bool = False,
    output: str | None = "logit",
    seed: int | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Score:
    """Infidelity: ``E_I[(β·Iᵀφ − (f_t(x) − f_t(x − I)))²]``, over ``samples`` draws of ``I``.

    ``perturbation="gaussian"``: ``I ~ N(0, noise²)`` entry by entry (``noise`` in input units).
    ``perturbation="square"``: ``x − I`` is ``x`` with a ``square x square`` patch (all channels,
    uniform position) set to ``baseline``, so ``I = x − baseline`` on the patch and 0 elsewhere.
    ``φ`` is read as Yeh's explanation, in the units of a gradient (a CAM map is spread over the
    channels), as Quantus does. Attributions already multiplied by ``x − baseline`` (integrated
    gradients, gradient × input) are read with ``multiply_by_inputs=True``: ``I`` is divided by
    ``x − baseline`` entry by entry (by 1 where they are equal), as Captum's
    ``infidelity_perturb_func_decorator`` does; square removal then compares the sum of ``φ``
    over the patch with the output's drop (Yeh's binary ``I``).

    ``normalize=True`` (the default) applies Yeh et al.'s optimal scaling per row, ``β =
    E[Δ·Iᵀφ] / E[(Iᵀφ)²]`` (their code does so before every reported figure; it makes the score
    blind to the scale of ``φ``), so the score is ``E[Δ²] − E[Δ·Iᵀφ]²/E[(Iᵀφ)²]``; with
    ``normalize=False``, ``β = 1`` (Quantus' default). ``β`` is 0 for a row whose ``Iᵀφ`` are all
    0. Lower is better. ``output`` as for :func:`faithfulness_correlation`. Cost:
    ``n · (samples + 1)`` forward passes. Reference: Yeh et al. 2019, "On the (In)fidelity and
    Sensitivity of Explanations".
    """
    check_positive_int(samples, "samples")
    check_choice(perturbation, "perturbation", PERTURBATIONS)
    run = setup(model, explanation, metric="infidelity", seed=seed, batch_size=batch_size)
    m, x, values = run.model, run.inputs, run.values
    require_floating(x, "infidelity")
    with m.explaining():
        phi = values_like_inputs(values, x, "infidelity")
        extra: dict[str, Any] = {}
        if perturbation == "gaussian":
            extra["noise"] = check_positive(noise, "noise")
        else:
            if x.dim() != 4:
                raise InputError("perturbation='square' needs images shaped (n, C, H, W)")
            if check_positive_int(square, "square") > min(x.shape[2:]):
                raise InputError(f"square must fit in the image {tuple(x.shape[2:])}, got {square}")
            extra["square"] = square
        if perturbation == "square" or multiply_by_inputs:
            base, base_meta = baseline_rows(baseline, x, seed=run.seed, metric="infidelity")
            extra.update(base_meta)
        if multiply_by_inputs:
            span = x - base
            span = torch.where(span == 0, torch.ones_like(span), span)

        def perturb(draws: slice, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if perturbation == "gaussian":
                pert = gaussian_noise(run.seed, draws.start, draws.stop, x.shape[1:], noise,
                                      x.device, x.dtype)
            else:
                mask = _square_masks(run.seed, draws.start, draws.stop, square,
                                     tuple(x.shape[2:]), x.device)
                pert = torch.where(mask, x[i] - base[i], torch.zeros((), dtype=x.dtype, device=x.device))
            per = pert / span[i] if multiply_by_inputs else pert
            return x[i] - pert, (per * phi[i]).reshape(len(i), -1).sum(dim=1).double()

        dots, drops, used = _sampled_drops(run, samples, output, perturb, batch_size=batch_size,
                                           progress=progress, desc="infidelity")
    n = len(x)
    if normalize:
        num, den = (dots * drops).mean(dim=1), dots.square().mean(dim=1)
        beta = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)),
                           torch.zeros_like(den))
    else:
        beta = torch.ones(n, dtype=torch.float64, device=x.device)
    infid = (beta[:, None] * dots - drops).square().mean(dim=1).to(m.dtype)
    meta = {"samples": samples, "perturbation": perturbation, **extra, "normalize": normalize,
            "multiply_by_inputs": multiply_by_inputs, "beta": beta.tolist(), "output": used,
            "seed": run.seed, "forward_rows": n * (samples + 1)}
    return Score("infidelity", infid, higher_is_better=False, meta=meta)
