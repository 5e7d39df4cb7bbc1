"""Sparseness (Gini index) and complexity (entropy) on hand-computed cases and against Quantus."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from pellucid import evaluate as ev
from pellucid.explanation import Explanation


def explained(values) -> Explanation:
    v = torch.as_tensor(values, dtype=torch.float32)
    n = len(v)
    return Explanation(values=v, inputs=torch.zeros_like(v), target=torch.zeros(n, dtype=torch.long),
                       outputs=torch.zeros(n))


def test_gini_by_hand():
    d = 10
    one_hot = torch.zeros(1, d)
    one_hot[0, 3] = -5.0  # the sign is ignored: |φ|
    # Sorted magnitudes 0, ..., 0, 5: Σ (2i − d − 1) a_(i) / (d Σ a) = (2d − d − 1)·5 / (d·5).
    assert ev.sparseness(explained(one_hot)).values.item() == pytest.approx(1 - 1 / d)
    assert ev.sparseness(explained(torch.full((1, d), 0.7))).values.item() == pytest.approx(0.0, abs=1e-7)
    # a = (0, 0, 1, 3): ((−3)·0 + (−1)·0 + 1·1 + 3·3) / (4·4) = 10/16.
    s = ev.sparseness(explained([[3.0, 0.0, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert s.values[0].item() == pytest.approx(0.625)
    assert math.isnan(s.values[1].item()) and s.higher_is_better
    assert s.meta["forward_rows"] == 0


def test_entropy_by_hand():
    d = 12
    assert ev.complexity(explained(torch.full((1, d), -2.0))).values.item() == pytest.approx(math.log(d))
    one_hot = torch.zeros(1, d)
    one_hot[0, 0] = 1.0
    assert ev.complexity(explained(one_hot)).values.item() == 0.0
    # p = (1/4, 1/4, 1/2): −2·(1/4)·ln(1/4) − (1/2)·ln(1/2) = 1.5 ln 2.
    c = ev.complexity(explained([[1.0, -1.0, 2.0, 0.0]]))
    assert c.values.item() == pytest.approx(1.5 * math.log(2)) and not c.higher_is_better


def test_images_are_flattened_with_their_channels():
    v = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    flat = explained(v.reshape(3, -1))
    assert torch.allclose(ev.sparseness(explained(v)).values, ev.sparseness(flat).values)
    assert torch.allclose(ev.complexity(explained(v)).values, ev.complexity(flat).values)


def test_agrees_with_quantus(peer):
    """Quantus' Sparseness and Complexity on the same attributions (``normalise=False``, so the
    values are scored as they are). Quantus adds 1e-7 to every magnitude before the Gini index
    and 1e-12 inside the logarithm, hence the tolerance."""
    quantus = peer("quantus")
    g = torch.Generator().manual_seed(1)
    a = torch.randn(6, 1, 8, 8, generator=g)
    a[0] = 0
    a[0, 0, 2, 5] = 1.0  # one-hot row
    x = torch.rand(6, 1, 8, 8, generator=g)
    e = explained(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call = dict(model=None, x_batch=x.numpy(), y_batch=np.zeros(6, dtype=int))
        gini = quantus.Sparseness(normalise=False, disable_warnings=True)(
            a_batch=a.numpy().copy(), **call)
        entropy = quantus.Complexity(normalise=False, disable_warnings=True)(
            a_batch=a.numpy().copy(), **call)
    np.testing.assert_allclose(ev.sparseness(e).values.numpy(), gini, atol=1e-5)
    np.testing.assert_allclose(ev.complexity(e).values.numpy(), entropy, atol=1e-5)
