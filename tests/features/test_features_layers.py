"""pellucid.features: activations, activation_stats, layer IG, conductance, maximize."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid import features as F
from pellucid.errors import InputError, LayerError

from conftest import assert_same_state, snapshot


# -- activations -------------------------------------------------------------------------------

def test_activations_equal_plain_forward_and_leave_no_hooks(cnn, images):
    cnn.train()
    before = snapshot(cnn)
    acts = F.activations(cnn, images, layers=["features.0", "features.3", "classifier.2"],
                         batch_size=4)
    assert_same_state(before, snapshot(cnn))
    cnn.eval()
    with torch.no_grad():
        a0 = cnn.features[0](images)
        a3 = cnn.features[:4](images)
        c2 = cnn.classifier[:3](cnn.features(images))
    torch.testing.assert_close(acts["features.0"], a0, rtol=0, atol=1e-6)
    torch.testing.assert_close(acts["features.3"], a3, rtol=0, atol=1e-6)
    torch.testing.assert_close(acts["classifier.2"], c2, rtol=0, atol=1e-6)


def test_activations_unknown_layer_is_clear(cnn, images):
    with pytest.raises(LayerError, match="unknown layer 'conv9'"):
        F.activations(cnn, images, layers="conv9")


# -- activation_stats --------------------------------------------------------------------------

def _dead_net(units: int = 20, dead: int = 7) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, units), nn.ReLU(), nn.Linear(units, 8), nn.Tanh())
    with torch.no_grad():  # inputs are in [0, 1): w ≤ 0 and b < 0 make a unit never positive
        net[0].weight[:dead] = -net[0].weight[:dead].abs()
        net[0].bias[:dead] = -1.0
        net[0].bias[dead:] = 0.5  # and the others alive (positive at x = 0)
        net[2].weight.mul_(20.0)  # drive the tanh into saturation
    return net


def test_activation_stats_counts_dead_units_exactly():
    net = _dead_net()
    data = torch.rand(1000, 5, generator=torch.Generator().manual_seed(0))
    before = snapshot(net)
    loader = [(data[i:i + 128], None) for i in range(0, 1000, 128)]  # streamed batches
    stats = F.activation_stats(net, loader)
    assert_same_state(before, snapshot(net))
    assert list(stats.layers) == ["1", "3"]
    relu = stats["1"]
    assert relu.dead_fraction == 7 / 20 and relu.dead[:7].all() and not relu.dead[7:].any()
    assert relu.values == 1000 * 20
    with torch.no_grad():
        z = net[0](data).double()
    assert relu.mean == pytest.approx(float(z.mean()), abs=1e-9)
    assert relu.std == pytest.approx(float(z.std(unbiased=False)), rel=1e-6)
    tanh = stats["3"]
    with torch.no_grad():
        z3 = net[:3](data)
    assert tanh.saturated_fraction == pytest.approx(float((z3.abs() > 2).float().mean()))
    assert tanh.saturated_fraction > 0.3
    assert "dead" in str(stats) and "35.0%" in str(stats)
    # the same as one tensor in chunks
    again = F.activation_stats(net, data, batch_size=100)
    assert again["1"].dead_fraction == relu.dead_fraction
    assert again["1"].mean == pytest.approx(relu.mean, abs=1e-9)


def test_activation_stats_on_a_conv_net_counts_channels(cnn, images):
    stats = F.activation_stats(cnn, images)
    assert stats["features.1"].units == 6 and stats["features.3"].kind == "tanh"
    assert stats["features.1"].saturated_fraction != stats["features.1"].saturated_fraction  # NaN


# -- layer integrated gradients and conductance ------------------------------------------------

captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture
def setup(cnn, images):
    cnn.eval()
    return cnn, images, torch.tensor([0, 1, 2, 3, 0, 1])


def test_layer_ig_matches_captum_and_is_complete(setup):
    net, x, t = setup
    before = snapshot(net)
    ours = pellucid.integrated_gradients(net, x, target=t, layer="features.2", steps=20,
                                         baseline=0.1)
    assert_same_state(before, snapshot(net))
    theirs = captum_attr.LayerIntegratedGradients(net, net.features[2]).attribute(
        x, baselines=torch.full_like(x, 0.1), target=t, n_steps=20, method="gausslegendre")
    torch.testing.assert_close(ours.values, theirs, atol=1e-5, rtol=0)
    assert ours.values.shape == (6, 8, 8, 8)
    assert ours.delta.abs().max() < 1e-3


@pytest.mark.parametrize("layer", ["features.1", "features.3", "classifier.2"])
def test_conductance_sums_to_ig_total(setup, layer):
    net, x, t = setup
    before = snapshot(net)
    cond = F.conductance(net, x, layer=layer, target=t, steps=50)
    assert_same_state(before, snapshot(net))
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


# -- maximize ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn()
    return model, load_digits()


@pytest.mark.slow
def test_maximize_class_logit_beats_every_real_digit(digits):
    model, data = digits
    before = snapshot(model)
    with torch.no_grad():
        logits = model(data.x_test)
    for cls in (3, 8):
        vis = F.maximize(model, F.class_logit(cls), shape=(1, 8, 8), seed=0, progress=False)
        best_real = float(logits[data.y_test == cls, cls].max())
        assert float(vis.values[0]) > best_real
        assert vis.images.min() >= 0 and vis.images.max() <= 1
        assert vis.curve.shape == (256, 1) and vis.curve[-20:].mean() > vis.curve[:20].mean()
    assert_same_state(before, snapshot(model))
    again = F.maximize(model, F.class_logit(8), shape=(1, 8, 8), seed=0, progress=False)
    assert torch.equal(again.images, vis.images)


def test_maximize_objectives_compose_and_pixels_work(digits):
    model, _ = digits
    obj = F.channel("features.2", 3) - 0.5 * F.channel("features.2", 5)
    assert obj.layers == ("features.2",) and "-" in obj.description
    vis = F.maximize(model, obj, shape=(1, 8, 8), steps=32, param="pixel", tv=0.1, l2=0.1,
                     batch=2, seed=1, transforms={"jitter": 0.05, "rotate": 10})
    assert vis.images.shape == (2, 1, 8, 8) and vis.curve.shape == (32, 2)
    direction = F.maximize(model, F.direction("features.2", torch.ones(32)) + F.neuron("features.0", 2),
                           shape=(1, 8, 8), steps=8, seed=0)
    assert torch.isfinite(direction.values).all()
    assert F.maximize(model, "features.2:4", shape=(1, 8, 8), steps=4, seed=0).objective \
        == "channel('features.2', 4)"


def test_maximize_errors_are_clear(digits):
    model, _ = digits
    with pytest.raises(LayerError, match="unknown layer 'conv2'"):
        F.maximize(model, F.channel("conv2", 3), shape=(1, 8, 8), steps=2)
    with pytest.raises(LayerError, match="has 32 channels.*channel 40 does not exist"):
        F.maximize(model, F.channel("features.2", 40), shape=(1, 8, 8), steps=2)
    with pytest.raises(InputError, match="shape"):
        F.maximize(model, F.class_logit(1), steps=2)
    with pytest.raises(InputError, match="param"):
        F.maximize(model, F.class_logit(1), shape=(1, 8, 8), param="wavelet", steps=2)
