"""Completeness checked with a tolerance, against hand computations and Quantus."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pellucid
from pellucid.evaluate import completeness


def test_exact_attributions_on_a_linear_model():
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    x = torch.randn(5, 4)
    e = pellucid.integrated_gradients(net, x, target=1)  # exact: w ⊙ x
    s = completeness(net, e)
    assert s.values.max() < 1e-5 and bool(s.meta["passed"].all())
    assert s.meta["forward_rows"] == 10


def test_gap_by_hand():
    net = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[2.0, -1.0]]))
    x = torch.tensor([[1.0, 1.0]])  # f(x) - f(0) = 1
    e = pellucid.saliency(net, x, abs=False)  # values (2, -1): sum 1 -> gap 0
    assert completeness(net, e).values.item() == pytest.approx(0.0)
    e = pellucid.saliency(net, x)  # |w| = (2, 1): sum 3 -> gap 2
    s = completeness(net, e)
    assert s.values.item() == pytest.approx(2.0) and not bool(s.meta["passed"][0])
    e = pellucid.gradient_x_input(net, x)
    s = completeness(net, e, baseline=0.5)  # f(x) - f(0.5) = 0.5, sum = 1 -> gap 0.5
    assert s.values.item() == pytest.approx(0.5)


def test_quantus_compares_floats_with_equality(peer):
    """Quantus' Completeness returns ``np.sum(a) == f(x) − f(x')``: exact float equality. On a
    linear model IG is exact up to float rounding, yet Quantus fails rows whose sums differ in
    the last bits; ours passes them all with a tolerance and reports the gap (< 1e-5)."""
    quantus = peer("quantus")
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 3)).eval()
    x = torch.randn(20, 6)
    e = pellucid.integrated_gradients(net, x, target=0)
    ours = completeness(net, e)
    assert bool(ours.meta["passed"].all()) and ours.values.max() < 1e-5
    theirs = quantus.Completeness(disable_warnings=True, abs=False, normalise=False,
                                  perturb_baseline=0.0)(
        model=net, x_batch=x.numpy(), y_batch=np.zeros(20, dtype=int),
        a_batch=e.values.numpy(), device="cpu")
    # Same baseline (0), same attributions, gaps below 1e-5: Quantus still fails rows.
    assert len(theirs) == 20 and not all(map(bool, theirs))
