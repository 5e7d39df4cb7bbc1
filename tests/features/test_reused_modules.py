"""Call sites of a reused module (torchvision's BasicBlock calls one in-place nn.ReLU twice) in
activations, activation_stats and maximize: ``"name@k"`` reads the k-th call; a plain name is
stacked where that is well defined and refused, with the call sites named, where it is not."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pellucid import features as F
from pellucid.errors import LayerError


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: ``self.relu`` (in place) runs twice per forward pass."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class BlockNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(4))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer1(self.stem(x)))


class TwoShapes(nn.Module):
    """One nn.ReLU on outputs of two different widths."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.out, self.relu = nn.Linear(4, 3), nn.Linear(3, 2), nn.Linear(2, 2), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.relu(self.b(self.relu(self.a(x)))))


@pytest.fixture
def net() -> BlockNet:
    torch.manual_seed(0)
    net = BlockNet()
    with torch.no_grad():  # batch norm statistics that are not the identity
        for bn in (net.layer1[0].bn1, net.layer1[0].bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(3))


def _by_hand(net: BlockNet, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Pre-activations and outputs of the two calls of ``layer1.0.relu``."""
    block = net.layer1[0]
    with torch.no_grad():
        s = net.stem(x)
        z0 = block.bn1(block.conv1(s))
        a0 = z0.clamp_min(0)
        z1 = block.bn2(block.conv2(a0)) + s
        return z0, a0, z1, z1.clamp_min(0)


def test_activations_read_each_call_site_and_stack_a_plain_name(net, x, model_state):
    before = model_state.snapshot(net)
    acts = F.activations(net, x, layers=["layer1.0.relu@1", "layer1.0.relu@0", "layer1.0.relu"],
                         batch_size=3)
    model_state.assert_same(before, model_state.snapshot(net))
    _, a0, _, a1 = _by_hand(net, x)
    assert list(acts) == ["layer1.0.relu@1", "layer1.0.relu@0", "layer1.0.relu"]
    torch.testing.assert_close(acts["layer1.0.relu@0"], a0, rtol=0, atol=1e-6)
    torch.testing.assert_close(acts["layer1.0.relu@1"], a1, rtol=0, atol=1e-6)
    torch.testing.assert_close(acts["layer1.0.relu"], torch.stack([a0, a1], 1), rtol=0, atol=1e-6)


def test_activations_of_a_layer_before_an_in_place_relu_are_its_own(net, x):
    # bn1's output is overwritten by the in-place ReLU after it; what was recorded must not be
    z0, *_ = _by_hand(net, x)
    acts = F.activations(net, x, layers="layer1.0.bn1")
    assert bool((acts["layer1.0.bn1"] < 0).any())
    torch.testing.assert_close(acts["layer1.0.bn1"], z0, rtol=0, atol=1e-6)


def test_activations_refuse_stacking_calls_of_different_shapes():
    net, x = TwoShapes(), torch.rand(5, 4)
    with pytest.raises(LayerError, match=r"'relu@0' \(3,\), 'relu@1' \(2,\)"):
        F.activations(net, x, layers="relu")
    with torch.no_grad():
        expect = net.relu(net.b(net.relu(net.a(x))))
    torch.testing.assert_close(F.activations(net, x, layers="relu@1")["relu@1"], expect)


def test_a_call_site_the_module_does_not_reach_is_clear(net, x):
    with pytest.raises(LayerError, match="'layer1.0.relu@2' does not exist.*@0 to @1"):
        F.activations(net, x, layers="layer1.0.relu@2")
    with pytest.raises(LayerError, match="'layer1.0.relu@2' does not exist"):
        F.activation_stats(net, x, layers="layer1.0.relu@2")


def test_activation_stats_refuses_to_pool_a_reused_module(net, x):
    with pytest.raises(LayerError, match="'layer1.0.relu@0', 'layer1.0.relu@1'"):
        F.activation_stats(net, x, layers="layer1.0.relu")


def test_activation_stats_per_call_site(net, x, model_state):
    z0, _, z1, _ = _by_hand(net, x)
    before = model_state.snapshot(net)
    named = F.activation_stats(net, x, layers=["layer1.0.relu@0", "layer1.0.relu@1"], batch_size=4)
    everything = F.activation_stats(net, x)  # layers=None: one entry per call site
    model_state.assert_same(before, model_state.snapshot(net))
    assert list(named.layers) == list(everything.layers) == ["layer1.0.relu@0", "layer1.0.relu@1"]
    for key, z in (("layer1.0.relu@0", z0), ("layer1.0.relu@1", z1)):
        for stats in (named, everything):
            s = stats[key]
            # the pre-activation survives the in-place ReLU
            assert s.mean == pytest.approx(float(z.double().mean()), abs=1e-6)
            assert s.positive_fraction == pytest.approx(float((z > 0).double().mean()))
            dead = ~(z > 0).any(0).flatten(1).any(1)
            assert torch.equal(s.dead, dead)
    assert named["layer1.0.relu@0"].mean != pytest.approx(named["layer1.0.relu@1"].mean)


def test_maximize_refuses_a_reused_module_and_reads_its_call_site(net):
    with pytest.raises(LayerError, match="'layer1.0.relu@0', 'layer1.0.relu@1'"):
        F.maximize(net, F.channel("layer1.0.relu", 0), shape=(1, 8, 8), steps=2, seed=0)
    vis = F.maximize(net, F.channel("layer1.0.relu@1", 0), shape=(1, 8, 8), steps=4, seed=0)
    *_, a1 = _by_hand(net, vis.images)
    torch.testing.assert_close(vis.values, a1[:, 0].flatten(1).mean(1))
