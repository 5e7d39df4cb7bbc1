"""DeepLIFT (rescale) and guided backprop against Captum and against answers known by hand."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pellucid
from pellucid.errors import UnsupportedLayerError

captum_attr = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def relu_cnn(act=nn.ReLU) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), act(), nn.Conv2d(6, 8, 3, padding=1), act(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 16), act(), nn.Linear(16, 4)).eval()


@pytest.fixture
def setup(images):
    return images, torch.tensor([0, 1, 2, 3, 0, 1])


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh, nn.Sigmoid])
def test_deeplift_matches_captum(setup, act, model_state):
    x, t = setup
    net = relu_cnn(act)
    for baseline in (None, torch.full_like(x, 0.3)):
        before = model_state.snapshot(net)
        ours = pellucid.deeplift(net, x, target=t, baseline=baseline)
        model_state.assert_same(before, model_state.snapshot(net))
        base = torch.zeros_like(x) if baseline is None else baseline
        theirs, delta = captum_attr.DeepLift(net).attribute(
            x, baselines=base, target=t, return_convergence_delta=True)
        torch.testing.assert_close(ours.values, theirs, atol=1e-5, rtol=0)
        # Summation to delta: Σ values = f(x) − f(x'), as Captum's own delta confirms.
        assert ours.delta.abs().max() < 1e-5
        assert delta.abs().max() < 1e-5
        with torch.no_grad():
            torch.testing.assert_close(ours.baseline_outputs, net(base)[torch.arange(6), t])


def test_deeplift_by_hand():
    """One ReLU unit: f(x) = relu(w·x) from x' = 0; the rescale multiplier is relu(z)/z, so the
    attribution is w_i x_i · 1[z > 0] — also where the gradient would be 0 at a kink baseline."""
    net = nn.Sequential(nn.Linear(2, 1, bias=False), nn.ReLU()).double().eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[2.0, -1.0]]))
    x = torch.tensor([[1.0, 0.5], [0.2, 1.0]], dtype=torch.float64)
    e = pellucid.deeplift(net, x)
    torch.testing.assert_close(e.values, torch.tensor([[2.0, -0.5], [0.0, 0.0]], dtype=torch.float64))
    base = torch.tensor([[-1.0, 0.0]], dtype=torch.float64)  # z' = −2 → relu = 0
    e = pellucid.deeplift(net, x[:1], baseline=base)
    # Δz = 1.5 − (−2) = 3.5, Δy = 1.5 − 0: multiplier 1.5/3.5 on Δx = (2, 0.5)·w = (4, −0.5).
    torch.testing.assert_close(e.values, torch.tensor([[4.0, -0.5]], dtype=torch.float64) * 1.5 / 3.5)
    torch.testing.assert_close(e.delta, torch.zeros(1, dtype=torch.float64))


def test_deeplift_functional_relus_match_modules(setup):
    x, t = setup
    net = relu_cnn()

    class Functional(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            m = self.m
            h = F.relu(m[0](x))
            h = m[4](m[2](h).relu())
            return m[8](torch.relu(m[6](torch.flatten(h, 1))))

    a = pellucid.deeplift(net, x, target=t, baseline=0.1).values
    b = pellucid.deeplift(Functional(net), x, target=t, baseline=0.1).values
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_deeplift_max_pooling_matches_captum(images):
    """Captum's two-part max pooling rule, on a CNN whose MaxPool sits between convolutions."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3),
                        nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 4)).eval()
    t = torch.tensor([0, 1, 2, 3, 0, 1])
    base = torch.full_like(images, 0.5)
    ours = pellucid.deeplift(net, images, target=t, baseline=base)
    theirs = captum_attr.DeepLift(net).attribute(images, baselines=base, target=t)
    torch.testing.assert_close(ours.values, theirs, atol=1e-5, rtol=0)
    assert ours.delta.abs().max() < 1e-5


def test_captum_deeplift_breaks_summation_after_adjacent_nonlinearities(cnn, images):
    """Peer defect: in Captum (0.9), a nonlinear module right after another one (ReLU → MaxPool,
    Tanh → MaxPool) uses a stale output gradient (captum issue #1104, fixed upstream by PR #1843,
    not in the installed release), so its own summation-to-delta fails.

    By hand, f = maxpool(relu(x)) over one 2×2 window, x = (0.2, 0.3, 0.6, 0.3),
    x' = (0.6, 0.2, −0.3, 0.5): relu(x') = (0.6, 0.2, 0, 0.5), so f(x) = f(x') = 0.6 and
    Δf = 0. The max rule gives max(y, y') − y' = 0 to x's maximum and y − max(y, y') = 0 to x''s:
    every attribution is 0. Captum puts 0.6 on the third pixel (Δx · relu's multiplier, i.e. the
    plain max-pool gradient instead of the max rule), a delta of 0.6. Ours: all zeros, delta 0.
    On the conftest CNN (Tanh → MaxPool) ours keeps delta ≈ 0 where Captum's is ~1e-3."""
    net = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1, 1, bias=False)).eval()
    with torch.no_grad():
        net[3].weight.fill_(1.0)
    x = torch.tensor([0.2, 0.3, 0.6, 0.3]).view(1, 1, 2, 2)
    base = torch.tensor([0.6, 0.2, -0.3, 0.5]).view(1, 1, 2, 2)
    ours = pellucid.deeplift(net, x, target=0, baseline=base)
    torch.testing.assert_close(ours.values, torch.zeros_like(x))
    theirs = captum_attr.DeepLift(net).attribute(x, baselines=base, target=0)
    torch.testing.assert_close(theirs.detach().flatten(), torch.tensor([0.0, 0.0, 0.6, 0.0]))

    cnn.eval()
    t = torch.tensor([0, 1, 2, 3, 0, 1])
    ours = pellucid.deeplift(cnn, images, target=t, baseline=0.5)
    _, delta = captum_attr.DeepLift(cnn).attribute(
        images, baselines=torch.full_like(images, 0.5), target=t, return_convergence_delta=True)
    assert ours.delta.abs().max() < 1e-5 < delta.abs().max()


def test_deeplift_refuses_what_it_has_no_rule_for(model_state):
    net = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2)).eval()
    before = model_state.snapshot(net)
    with pytest.raises(UnsupportedLayerError, match="LayerNorm"):
        pellucid.deeplift(net, torch.randn(3, 4))
    model_state.assert_same(before, model_state.snapshot(net))


def test_guided_backprop_matches_captum(setup):
    x, t = setup
    net = relu_cnn()
    ours = pellucid.guided_backprop(net, x, target=t)
    theirs = captum_attr.GuidedBackprop(net).attribute(x, target=t)
    torch.testing.assert_close(ours.values, theirs, atol=1e-6, rtol=0)
    assert ours.method == "guided_backprop" and ours.baseline_outputs is None


def test_guided_backprop_by_hand():
    """f = v·relu(W x): the gradient at the hidden ReLU is v (masked by W x > 0); guided
    backprop keeps only its positive entries."""
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        net[2].weight.copy_(torch.tensor([[2.0, -3.0, 1.0]]))
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    e = pellucid.guided_backprop(net, x)
    # Hidden gradient (2, −3, 1) → (2, 0, 1); through W: (2 + 1, 0 + 1).
    torch.testing.assert_close(e.values, torch.tensor([[3.0, 1.0]], dtype=torch.float64))
    plain = pellucid.saliency(net, x, abs=False).values
    torch.testing.assert_close(plain, torch.tensor([[3.0, -2.0]], dtype=torch.float64))
