"""Layer integrated gradients and conductance (pellucid.attribution, re-exported by features)."""
from __future__ import annotations

import pytest
import torch

import pellucid
from pellucid import features as F

captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture
def setup(cnn, images):
    cnn.eval()
    return cnn, images, torch.tensor([0, 1, 2, 3, 0, 1])


def test_layer_ig_matches_captum_and_is_complete(setup, model_state):
    net, x, t = setup
    before = model_state.snapshot(net)
    ours = pellucid.integrated_gradients(net, x, target=t, layer="features.2", steps=20,
                                         baseline=0.1)
    model_state.assert_same(before, model_state.snapshot(net))
    theirs = captum_attr.LayerIntegratedGradients(net, net.features[2]).attribute(
        x, baselines=torch.full_like(x, 0.1), target=t, n_steps=20, method="gausslegendre")
    torch.testing.assert_close(ours.values, theirs, atol=1e-5, rtol=0)
    assert ours.values.shape == (6, 8, 8, 8)
    assert ours.delta.abs().max() < 1e-3


@pytest.mark.parametrize("layer", ["features.1", "features.3", "classifier.2"])
def test_conductance_sums_to_ig_total(setup, layer, model_state):
    net, x, t = setup
    before = model_state.snapshot(net)
    cond = F.conductance(net, x, layer=layer, target=t, steps=50)
    model_state.assert_same(before, model_state.snapshot(net))
    ig = pellucid.integrated_gradients(net, x, target=t, steps=50)
    totals = cond.values.flatten(1).sum(1)
    torch.testing.assert_close(totals, ig.values.flatten(1).sum(1), atol=1e-2, rtol=0)
    assert cond.delta.abs().max() < 1e-2


@pytest.mark.filterwarnings("ignore")
def test_conductance_agrees_with_captum(setup):
    """Captum's LayerConductance is a first-order (finite-difference) rule; at many steps it
    converges to our exact-derivative quadrature."""
    net, x, t = setup
    ours = F.conductance(net, x, layer="features.3", target=t, steps=50).values
    theirs = captum_attr.LayerConductance(net, net.features[3]).attribute(
        x, target=t, n_steps=400, method="riemann_trapezoid")
    assert float((ours - theirs).abs().max()) < 0.05 * float(ours.abs().max())


def test_top_units_ranks_conductance(setup):
    net, x, t = setup
    cond = F.conductance(net, x, layer="features.1", target=t, steps=16)
    idx, scores = F.top_units(cond, 3)
    per_channel = cond.values.mean(0).flatten(1).sum(1)
    assert idx.tolist() == per_channel.topk(3).indices.tolist()
    idx, _ = F.top_units(cond, 2, per="unit")
    assert idx.shape == (2, 3)
