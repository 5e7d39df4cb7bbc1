"""Cross-checks against Captum on the same model and inputs, to 1e-5."""
from __future__ import annotations

import pytest
import torch

import pellucid

captum_attr = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


@pytest.fixture
def setup(cnn, images):
    cnn.eval()
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    return cnn, images, target


def test_saliency_matches_captum(setup):
    net, x, t = setup
    ours = pellucid.saliency(net, x, target=t).values
    theirs = captum_attr.Saliency(net).attribute(x, target=t, abs=True)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    ours = pellucid.saliency(net, x, target=t, abs=False).values
    theirs = captum_attr.Saliency(net).attribute(x, target=t, abs=False)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_gradient_x_input_matches_captum(setup):
    net, x, t = setup
    ours = pellucid.gradient_x_input(net, x, target=t).values
    theirs = captum_attr.InputXGradient(net).attribute(x, target=t)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_left", "riemann_right",
                                  "riemann_middle"])
def test_integrated_gradients_matches_captum(setup, rule):
    net, x, t = setup
    baseline = torch.full_like(x, 0.2)
    ours = pellucid.integrated_gradients(net, x, target=t, baseline=baseline, steps=20,
                                         method=rule)
    theirs, delta = captum_attr.IntegratedGradients(net).attribute(
        x, baselines=baseline, target=t, n_steps=20, method=rule,
        return_convergence_delta=True)
    torch.testing.assert_close(ours.values, theirs, atol=1e-5, rtol=0)
    # Both define delta as Σ values − (f(x) − f(x')).
    torch.testing.assert_close(ours.delta, delta.to(ours.delta.dtype), atol=1e-5, rtol=0)


def test_captum_trapezoid_rule_under_integrates(setup):
    """Captum's ``riemann_trapezoid`` places n nodes at spacing 1/(n−1) but weights them 1/n
    (halved at the ends), so its weights sum to (n−1)/n instead of 1: every attribution is
    scaled by (n−1)/n and completeness fails even for a linear model. Ours uses the textbook
    weights 1/(n−1); the linear-model test in test_gradient.py shows ours is exact. Here: ours
    × (n−1)/n equals Captum's."""
    net, x, t = setup
    n = 20
    ours = pellucid.integrated_gradients(net, x, target=t, steps=n, method="riemann_trapezoid")
    theirs = captum_attr.IntegratedGradients(net).attribute(
        x, target=t, n_steps=n, method="riemann_trapezoid")
    torch.testing.assert_close(ours.values * (n - 1) / n, theirs, atol=1e-5, rtol=0)
    linear = torch.nn.Linear(4, 1)
    z = torch.randn(3, 4)
    theirs = captum_attr.IntegratedGradients(linear).attribute(
        z, n_steps=n, method="riemann_trapezoid")
    exact = linear.weight[0].detach() * z
    torch.testing.assert_close(theirs, exact * (n - 1) / n, atol=1e-6, rtol=0)


def test_grad_cam_matches_captum_at_layer_resolution(setup):
    net, x, t = setup
    layer = net.features[2]
    ours = pellucid.grad_cam(net, x, layer="features.2", target=t, upsample=False).values
    theirs = captum_attr.LayerGradCam(net, layer).attribute(x, target=t, relu_attributions=True)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    ours = pellucid.grad_cam(net, x, layer=layer, target=t, upsample=False, relu=False).values
    theirs = captum_attr.LayerGradCam(net, layer).attribute(x, target=t)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_smoothgrad_without_noise_matches_captum_noise_tunnel(setup):
    """With zero noise both reduce to the base method; Captum's NoiseTunnel draws from the
    global RNG, so only the noise-free case can be compared value for value."""
    net, x, t = setup
    ours = pellucid.smoothgrad(net, x, target=t, samples=4, noise=0.0, seed=0).values
    theirs = captum_attr.NoiseTunnel(captum_attr.Saliency(net)).attribute(
        x, target=t, nt_type="smoothgrad", nt_samples=4, stdevs=0.0)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
