"""intervene / ablate / patch against answers known by hand."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import assert_same_state, snapshot
from pellucid.errors import InputError, LayerError
from pellucid.probe import ablate, intervene, patch


def _linear(d: int = 5, k: int = 3) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(d, k)


def test_intervene_linear_effect_by_hand():
    lin = _linear()
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(1))
    before = snapshot(lin)
    r = intervene(lin, x, do={1: 2.0, 3: -1.0}, target=2, batch_size=7)
    w = lin.weight.detach()[2]
    expected = w[1] * (2.0 - x[:, 1]) + w[3] * (-1.0 - x[:, 3])
    assert torch.allclose(r.effect, expected, atol=1e-5)
    assert r.mean_effect == pytest.approx(float(expected.mean()), abs=1e-5)
    assert torch.equal(r.inputs[:, 1], torch.full((20,), 2.0))
    assert_same_state(before, snapshot(lin))


def test_intervene_default_target_is_argmax_at_original_and_tuple_index(cnn, images):
    r = intervene(cnn, images, do={(0, 2, 3): 1.0})
    assert torch.equal(r.target, cnn.eval()(images).argmax(1))
    assert r.inputs[:, 0, 2, 3].eq(1.0).all()


def test_intervene_unknown_feature():
    with pytest.raises(InputError, match="unknown feature 7.*0..4"):
        intervene(_linear(), torch.zeros(3, 5), do={7: 0.0})
    with pytest.raises(InputError, match="unknown feature"):
        intervene(_linear(), torch.zeros(3, 5), do={(0, 1): 0.0})


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(6 * 8 * 8, 4))

    def forward(self, x):
        return self.head(self.act(self.conv(x)))


@pytest.fixture
def convnet() -> ConvNet:
    torch.manual_seed(0)
    return ConvNet()


def test_ablate_equals_hand_zeroed_model(convnet, images):
    before = snapshot(convnet)
    r = ablate(convnet, images, layer="conv", units=[1, 4], target=0, batch_size=4)
    hand = copy.deepcopy(convnet)
    with torch.no_grad():
        hand.conv.weight[[1, 4]] = 0
        hand.conv.bias[[1, 4]] = 0
    assert torch.allclose(r.after, hand(images)[:, 0], atol=1e-6)
    assert torch.allclose(r.before, convnet(images)[:, 0], atol=1e-6)
    assert torch.allclose(r.effect, r.after - r.before)
    assert r.units.tolist() == [1, 4]
    assert_same_state(before, snapshot(convnet))


def test_ablate_mean_uses_unit_mean(convnet, images):
    acts = convnet.conv(images).detach()
    r = ablate(convnet, images, layer=convnet.act, units=2, value="mean", target=1, batch_size=4)
    a = convnet.act(acts).clone()  # channel 2 of the ReLU's output replaced by its mean over rows
    a[:, 2] = convnet.act(acts)[:, 2].mean(0)
    assert torch.allclose(r.after, convnet.head(a)[:, 1], atol=1e-5)


def test_ablate_errors(convnet, images):
    before = snapshot(convnet)
    with pytest.raises(InputError, match="unit 6 is out of range.*6 units"):
        ablate(convnet, images, layer="conv", units=[0, 6])
    with pytest.raises(LayerError, match="unknown layer 'nope'"):
        ablate(convnet, images, layer="nope", units=0)
    with pytest.raises(InputError, match="value must be"):
        ablate(convnet, images, layer="conv", units=0, value="median")
    assert_same_state(before, snapshot(convnet))


def test_patch_all_units_restores_clean_exactly(cnn, images):
    before = snapshot(cnn)
    corrupt = images.flip(0) * 0.5
    r = patch(cnn, images, corrupt, layer="features.2", batch_size=4)
    assert torch.equal(r.patched, r.clean)
    assert torch.equal(r.restored, torch.ones(len(images)))
    assert r.mean_restored == 1.0
    # naming every unit is the same as units=None
    r2 = patch(cnn, images, corrupt, layer="features.2", units=range(8))
    assert torch.equal(r2.patched, r2.clean) and torch.equal(r2.restored, r.restored)
    assert_same_state(before, snapshot(cnn))


def test_patch_some_units_by_hand(convnet, images):
    corrupt = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    r = patch(convnet, images, corrupt, layer="conv", units=[0, 3])
    a = convnet.conv(corrupt).detach()
    a[:, [0, 3]] = convnet.conv(images).detach()[:, [0, 3]]
    expected = convnet.head(convnet.act(a)).gather(1, r.target[:, None])[:, 0]
    assert torch.allclose(r.patched, expected, atol=1e-6)
    assert torch.equal(r.target, convnet(images).argmax(1))
    assert torch.allclose(r.restored, (r.patched - r.corrupt) / (r.clean - r.corrupt))


def test_patch_nan_where_clean_equals_corrupt(convnet, images):
    r = patch(convnet, images, images.clone(), layer="conv", units=[0])
    assert torch.isnan(r.restored).all()


def test_patch_errors(convnet, images):
    before = snapshot(convnet)
    with pytest.raises(InputError, match="same number of rows"):
        patch(convnet, images, images[:3], layer="conv")
    with pytest.raises(InputError, match="unit 9 is out of range"):
        patch(convnet, images, images, layer="conv", units=9)
    with pytest.raises(LayerError, match="unknown layer"):
        patch(convnet, images, images, layer="conv.x")
    assert_same_state(before, snapshot(convnet))


def test_reused_layer_is_rejected():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(self.lin(x))

    net = Twice()
    with pytest.raises(LayerError, match="exactly once"):
        ablate(net, torch.zeros(2, 3), layer="lin", units=0)
    assert snapshot(net)["hooks"] == [0, 0]
