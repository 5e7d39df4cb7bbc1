"""Gradient attributions against answers known by hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid.attribution._path import path_rule


@pytest.fixture
def linear():
    """f(x) = w·x + b with two outputs (rows of W)."""
    torch.manual_seed(3)
    net = nn.Linear(5, 2)
    x = torch.randn(7, 5)
    return net, x


def test_linear_saliency_is_abs_weight(linear):
    net, x = linear
    e = pellucid.saliency(net, x, target=1)
    torch.testing.assert_close(e.values, net.weight[1].abs().expand_as(x), atol=1e-5, rtol=0)
    e = pellucid.saliency(net, x, target=0, abs=False)
    torch.testing.assert_close(e.values, net.weight[0].expand_as(x), atol=1e-5, rtol=0)


def test_linear_gradient_x_input(linear):
    net, x = linear
    e = pellucid.gradient_x_input(net, x, target=1)
    torch.testing.assert_close(e.values, net.weight[1] * x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_left", "riemann_right",
                                  "riemann_middle", "riemann_trapezoid"])
def test_linear_integrated_gradients_zero_baseline(linear, rule):
    net, x = linear
    e = pellucid.integrated_gradients(net, x, target=1, method=rule, steps=7)
    torch.testing.assert_close(e.values, net.weight[1] * x, atol=1e-5, rtol=0)
    torch.testing.assert_close(e.outputs, net(x)[:, 1].detach())
    torch.testing.assert_close(e.baseline_outputs, net.bias[1].detach().expand(len(x)))
    assert e.delta.abs().max() < 1e-5


def test_linear_integrated_gradients_baselines(linear):
    net, x = linear
    w = net.weight[1].detach()
    row = torch.randn(5)
    for baseline, ref in [(0.5, torch.full_like(x, 0.5)), (row, row.expand_as(x)),
                          (x.flip(0), x.flip(0)), (row.numpy(), row.expand_as(x))]:
        e = pellucid.integrated_gradients(net, x, target=1, baseline=baseline)
        torch.testing.assert_close(e.values, w * (x - ref), atol=1e-5, rtol=0)


def test_quadrature_rules_integrate_exactly():
    # Gauss-Legendre with k nodes is exact for degree 2k-1; every rule sums weights to 1.
    for rule in ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
                 "riemann_trapezoid"]:
        a, w = path_rule(rule, 10)
        assert abs(w.sum() - 1) < 1e-12 and a.min() >= 0 and a.max() <= 1
    a, w = path_rule("gausslegendre", 4)
    assert abs((w * a**7).sum() - 1 / 8) < 1e-12
    a, w = path_rule("riemann_trapezoid", 3)
    assert list(a) == [0.0, 0.5, 1.0] and list(w) == [0.25, 0.5, 0.25]


def test_ig_completeness_on_nonlinear_cnn(images):
    """Gauss-Legendre with 32 steps closes the completeness gap to 1% on a smooth CNN."""
    torch.manual_seed(0)
    smooth = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.GELU(), nn.Conv2d(6, 8, 3, padding=1), nn.Tanh(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(128, 16), nn.Softplus(), nn.Linear(16, 4),
    )
    e = pellucid.integrated_gradients(smooth, images, method="gausslegendre", steps=32)
    gap = (e.outputs - e.baseline_outputs).abs()
    assert (gap > 1e-3).all()
    assert (e.delta.abs() <= 0.01 * gap).all(), (e.delta, gap)


def test_ig_converges_on_a_relu_maxpool_cnn(cnn, images):
    """Kinks (ReLU, max pooling) slow every quadrature down; the gap must still shrink to ~0."""
    rel = []
    for steps in (8, 64, 512):
        e = pellucid.integrated_gradients(cnn, images, steps=steps)
        rel.append((e.delta.abs() / (e.outputs - e.baseline_outputs).abs()).max().item())
    assert rel[0] > rel[1] > rel[2] and rel[2] < 0.005, rel


def test_ig_chunking_does_not_change_values(cnn, images):
    a = pellucid.integrated_gradients(cnn, images, steps=20, batch_size=7)
    b = pellucid.integrated_gradients(cnn, images, steps=20, batch_size=1000)
    torch.testing.assert_close(a.values, b.values, atol=1e-6, rtol=1e-5)


def test_ig_target_is_chosen_at_the_input(cnn, images):
    e = pellucid.integrated_gradients(cnn, images, steps=8)
    cnn.eval()
    assert torch.equal(e.target, cnn(images).argmax(1))


def test_batch_size_bounds_every_forward_pass(cnn, images):
    seen = []
    cnn.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].shape[0]))
    pellucid.integrated_gradients(cnn, images, steps=10, batch_size=8)
    assert max(seen) <= 8 and sum(seen) == len(images) * 10 + 2 * len(images)


def test_smoothgrad_seeded_and_global_rng_untouched(cnn, images):
    state = torch.get_rng_state()
    a = pellucid.smoothgrad(cnn, images, samples=8, seed=5)
    b = pellucid.smoothgrad(cnn, images, samples=8, seed=5)
    c = pellucid.smoothgrad(cnn, images, samples=8, seed=6)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a.values, b.values)
    assert not torch.equal(a.values, c.values)
    assert a.meta["seed"] == 5


def test_smoothgrad_without_noise_is_the_base_method(cnn, images):
    sg = pellucid.smoothgrad(cnn, images, samples=3, noise=0.0, seed=0, base="gradient_x_input")
    gx = pellucid.gradient_x_input(cnn, images, target=sg.target)
    torch.testing.assert_close(sg.values, gx.values)
    var = pellucid.smoothgrad(cnn, images, samples=3, noise=0.0, seed=0, variant="var")
    assert var.values.abs().max() < 1e-6


def test_smoothgrad_variants_by_hand(linear):
    """On a linear model every noisy gradient is w: mean = |w|, squared = w², var = 0."""
    net, x = linear
    w = net.weight[0].detach()
    kw = dict(target=0, samples=5, seed=1, abs=False)
    torch.testing.assert_close(pellucid.smoothgrad(net, x, **kw).values, w.expand_as(x))
    torch.testing.assert_close(
        pellucid.smoothgrad(net, x, variant="squared", **kw).values, (w * w).expand_as(x))
    assert pellucid.smoothgrad(net, x, variant="var", **kw).values.abs().max() < 1e-6


def test_smoothgrad_noise_scale_follows_value_range():
    """With f(x) = x·x the gradient is 2x, so VarGrad = 4σ² with σ = noise·(max − min)."""
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    e = pellucid.smoothgrad(lambda z: (z * z).sum(1), x, abs=False, samples=20000,
                            noise=0.1, variant="var", seed=0)
    torch.testing.assert_close(e.values, torch.full_like(x, 4 * 0.3**2), rtol=0.05, atol=0)


def test_smoothgrad_over_integrated_gradients(cnn, images):
    e = pellucid.smoothgrad(cnn, images[:2], base="integrated_gradients", steps=4, samples=3,
                            seed=0)
    assert e.values.shape == images[:2].shape and e.params["steps"] == 4


def test_target_forms_agree(cnn, images):
    as_int = pellucid.saliency(cnn, images, target=2)
    as_list = pellucid.saliency(cnn, images, target=[2] * len(images))
    as_tensor = pellucid.saliency(cnn, images, target=torch.full((len(images),), 2))
    torch.testing.assert_close(as_int.values, as_list.values)
    torch.testing.assert_close(as_int.values, as_tensor.values)
    per_row = pellucid.saliency(cnn, images, target=[0, 1, 2, 3, 0, 1])
    assert per_row.target.tolist() == [0, 1, 2, 3, 0, 1]


def test_single_output_model_needs_no_target():
    net = nn.Sequential(nn.Linear(3, 1))
    e = pellucid.gradient_x_input(net, torch.ones(2, 3))
    assert e.target.tolist() == [0, 0]
    e = pellucid.saliency(lambda x: (x**2).sum(1), torch.ones(2, 3), abs=False)
    torch.testing.assert_close(e.values, torch.full((2, 3), 2.0))


def test_numpy_and_integer_inputs():
    net = nn.Linear(3, 2)
    e = pellucid.gradient_x_input(net, [[1, 2, 3]], target=0)
    assert e.values.dtype == torch.float32
    torch.testing.assert_close(e.values[0], net.weight[0].detach() * torch.tensor([1.0, 2, 3]))
