"""Spearman and SSIM, the randomisation tests' similarity measures: by hand and against
scipy/skimage."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from pellucid.errors import InputError
from pellucid.evaluate.similarity import spearman, ssim


def test_spearman_matches_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (6, 40), generator=g).double()  # many ties
    b = a + torch.randn(6, 40, generator=g, dtype=torch.float64) * 2
    b[0] = torch.randint(0, 3, (40,), generator=g).double()
    ours = spearman(a, b)
    expected = [spearmanr(a[i].numpy(), b[i].numpy())[0] for i in range(6)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)
    # 2-D rows are flattened; a constant row has no rank correlation (NaN, as scipy)
    assert spearman(a.view(6, 4, 10), a.view(6, 4, 10)).tolist() == pytest.approx([1.0] * 6)
    assert math.isnan(spearman(torch.ones(1, 5), torch.arange(5.0)[None]).item())
    assert spearman(torch.tensor([[1.0, 2, 3]]), torch.tensor([[3.0, 2, 1]])).item() == pytest.approx(-1)


def _ssim_loop(a: np.ndarray, b: np.ndarray, size: int, sigma: float, rng: float) -> float:
    """SSIM written out window by window, for reference."""
    taps = np.arange(size) - (size - 1) / 2
    g = np.exp(-taps**2 / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    values = []
    for i in range(a.shape[0] - size + 1):
        for j in range(a.shape[1] - size + 1):
            pa, pb = a[i:i + size, j:j + size], b[i:i + size, j:j + size]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_identical_maps_score_one_and_match_skimage():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(4, 16, 16, generator=g, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(4, 16, 16, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert ssim(a, a).tolist() == pytest.approx([1.0] * 4, abs=1e-12)
    ours = ssim(a, b)
    rng = (a.amax(dim=(1, 2)) - a.amin(dim=(1, 2))).numpy()
    skimage_metrics = pytest.importorskip("skimage.metrics")
    ref = [skimage_metrics.structural_similarity(
        a[i].numpy(), b[i].numpy(), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=rng[i]) for i in range(4)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)


def test_ssim_on_small_maps_matches_a_loop():
    # 8x8 maps: the 11-tap window shrinks to 7 taps (sigma stays 1.5)
    g = torch.Generator().manual_seed(2)
    a = torch.randn(3, 8, 8, generator=g, dtype=torch.float64)
    b = a.flip(-1) + 0.1 * torch.randn(3, 8, 8, generator=g, dtype=torch.float64)
    ours = ssim(a, b, data_range=2.0)
    ref = [_ssim_loop(a[i].numpy(), b[i].numpy(), 7, 1.5, 2.0) for i in range(3)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)
    with pytest.raises(InputError):
        ssim(a, b[:2])
