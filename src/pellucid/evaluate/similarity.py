"""How alike are two explanations of the same rows? Spearman rank correlation and SSIM, batched.

The randomisation tests (:mod:`pellucid.evaluate.randomization`) compare the maps of a model and
of its scrambled copy with these; both return one value per row, in float64, without a loop over
rows.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import InputError

__all__ = ["spearman", "ssim", "similarities", "MEASURES"]

MEASURES = ("spearman", "ssim")


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (flattened).

    ``ρ = Pearson(rank(a), rank(b))`` with tied values given their average rank (as
    ``scipy.stats.spearmanr``); NaN for a constant row. Float64, one sort per row, no loops.
    """
    ra, rb = _ranks(a.reshape(len(a), -1)), _ranks(b.reshape(len(b), -1))
    ra, rb = ra - ra.mean(dim=1, keepdim=True), rb - rb.mean(dim=1, keepdim=True)
    return ((ra * rb).sum(dim=1) / (ra.norm(dim=1) * rb.norm(dim=1))).clamp(-1, 1)


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """1-based ranks along dim 1; tied values share the mean of their positions."""
    n, f = v.shape
    order = v.argsort(dim=1, stable=True)
    s = v.gather(1, order)
    pos = torch.arange(f, device=v.device).expand(n, f)
    starts = torch.ones_like(s, dtype=torch.bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, pos, 0).cummax(dim=1).values
    last = torch.where(ends, pos, f).flip(1).cummin(dim=1).values.flip(1)
    ranks = (first + last).double() / 2 + 1
    return torch.empty_like(ranks).scatter_(1, order, ranks)


def ssim(
    a: torch.Tensor, b: torch.Tensor, *, data_range: torch.Tensor | float | None = None,
    window: int = 11, sigma: float = 1.5,
) -> torch.Tensor:
    """Structural similarity of 2-D maps ``(n, H, W)``, one value per row.

    ``SSIM = mean_w [(2μ_aμ_b + C1)(2σ_ab + C2)] / [(μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)]``
    with Gaussian-weighted local statistics (``window`` taps, ``sigma`` 1.5; the window shrinks
    to the largest odd size that fits a smaller map), ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²`` and
    ``L = data_range`` (per row or one number; default: the range of ``a``, the reference). Only
    windows inside the map count (as ``skimage.metrics.structural_similarity`` with
    ``gaussian_weights=True, use_sample_covariance=False``). Reference: Wang, Bovik, Sheikh &
    Simoncelli 2004, "Image Quality Assessment: From Error Visibility to Structural Similarity".
    """
    if a.dim() != 3 or a.shape != b.shape:
        raise InputError(f"ssim needs two batches of 2-D maps (n, H, W) of one shape; got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.double(), b.double()
    n, h, w = a.shape
    size = min(window, h, w)
    size -= 1 - size % 2
    taps = torch.arange(size, dtype=torch.float64, device=a.device) - (size - 1) / 2
    g = torch.exp(-taps**2 / (2 * sigma**2))
    g = g / g.sum()
    if data_range is None:
        flat = a.reshape(n, -1)
        data_range = flat.max(dim=1).values - flat.min(dim=1).values
    rng = torch.as_tensor(data_range, dtype=torch.float64, device=a.device).expand(n)
    rng = torch.where(rng > 0, rng, torch.ones_like(rng))  # a constant map: any positive L
    stack = torch.stack([a, b, a * a, b * b, a * b], dim=1).reshape(n * 5, 1, h, w)
    local = F.conv2d(F.conv2d(stack, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
    mu_a, mu_b, aa, bb, ab = local.reshape(n, 5, *local.shape[2:]).unbind(dim=1)
    c1, c2 = ((0.01 * rng) ** 2).view(n, 1, 1), ((0.03 * rng) ** 2).view(n, 1, 1)
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2))


def similarities(
    original: torch.Tensor, other: torch.Tensor, measures: Sequence[str], abs: bool
) -> dict[str, torch.Tensor]:
    """Each measure of ``other`` against ``original`` (attribution values), per row."""
    a, b = (original.abs(), other.abs()) if abs else (original, other)
    out = {}
    for measure in measures:
        if measure == "spearman":
            out[measure] = spearman(a, b)
        else:
            out[measure] = ssim(*(_normalised(_map2d(t)) for t in (a, b)))
    return out


def _map2d(values: torch.Tensor) -> torch.Tensor:
    """An image attribution as one 2-D map per row: channels summed."""
    if values.dim() == 4:
        return values.sum(dim=1)
    if values.dim() == 3:
        return values
    raise InputError(
        f"SSIM compares 2-D maps; attributions shaped {tuple(values.shape)} are not images "
        "(n, C, H, W) or (n, H, W). Use similarity='spearman'."
    )


def _normalised(m: torch.Tensor) -> torch.Tensor:
    """Each map divided by its largest absolute value (SSIM is not scale-invariant)."""
    peak = m.reshape(len(m), -1).abs().max(dim=1).values.view(-1, 1, 1)
    return m / torch.where(peak > 0, peak, torch.ones_like(peak))
