"""intervene / ablate / patch against answers known by hand."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pellucid.errors import BaselineError, InputError, LayerError
from pellucid.probe import ablate, intervene, patch


def _linear(d: int = 5, k: int = 3) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(d, k)


def test_intervene_linear_effect_by_hand(model_state):
    lin = _linear()
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(1))
    before = model_state.snapshot(lin)
    r = intervene(lin, x, do={1: 2.0, 3: -1.0}, target=2, batch_size=7)
    w = lin.weight.detach()[2]
    expected = w[1] * (2.0 - x[:, 1]) + w[3] * (-1.0 - x[:, 3])
    assert torch.allclose(r.effect, expected, atol=1e-5)
    assert r.mean_effect == pytest.approx(float(expected.mean()), abs=1e-5)
    assert torch.equal(r.inputs[:, 1], torch.full((20,), 2.0))
    model_state.assert_same(before, model_state.snapshot(lin))


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


def test_ablate_equals_hand_zeroed_model(convnet, images, model_state):
    before = model_state.snapshot(convnet)
    r = ablate(convnet, images, layer="conv", units=[1, 4], target=0, batch_size=4)
    hand = copy.deepcopy(convnet)
    with torch.no_grad():
        hand.conv.weight[[1, 4]] = 0
        hand.conv.bias[[1, 4]] = 0
    assert torch.allclose(r.after, hand(images)[:, 0], atol=1e-6)
    assert torch.allclose(r.before, convnet(images)[:, 0], atol=1e-6)
    assert torch.allclose(r.effect, r.after - r.before)
    assert r.units.tolist() == [1, 4]
    model_state.assert_same(before, model_state.snapshot(convnet))


def test_ablate_mean_uses_unit_mean(convnet, images):
    acts = convnet.conv(images).detach()
    r = ablate(convnet, images, layer=convnet.act, units=2, value="mean", target=1, batch_size=4)
    a = convnet.act(acts).clone()  # channel 2 of the ReLU's output replaced by its mean over rows
    a[:, 2] = convnet.act(acts)[:, 2].mean(0)
    assert torch.allclose(r.after, convnet.head(a)[:, 1], atol=1e-5)


def test_ablate_errors(convnet, images, model_state):
    before = model_state.snapshot(convnet)
    with pytest.raises(InputError, match="unit 6 is out of range.*6 units"):
        ablate(convnet, images, layer="conv", units=[0, 6])
    with pytest.raises(LayerError, match="unknown layer 'nope'"):
        ablate(convnet, images, layer="nope", units=0)
    with pytest.raises(InputError, match="value must be"):
        ablate(convnet, images, layer="conv", units=0, value="median")
    model_state.assert_same(before, model_state.snapshot(convnet))


def test_patch_all_units_restores_clean_exactly(cnn, images, model_state):
    before = model_state.snapshot(cnn)
    corrupt = images.flip(0) * 0.5
    r = patch(cnn, images, corrupt, layer="features.2", batch_size=4)
    assert torch.equal(r.patched, r.outputs)
    assert torch.equal(r.restored, torch.ones(len(images)))
    assert r.mean_restored == 1.0
    # naming every unit is the same as units=None
    r2 = patch(cnn, images, corrupt, layer="features.2", units=range(8))
    assert torch.equal(r2.patched, r2.outputs) and torch.equal(r2.restored, r.restored)
    model_state.assert_same(before, model_state.snapshot(cnn))


def test_patch_some_units_by_hand(convnet, images):
    corrupt = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    r = patch(convnet, images, corrupt, layer="conv", units=[0, 3])
    a = convnet.conv(corrupt).detach()
    a[:, [0, 3]] = convnet.conv(images).detach()[:, [0, 3]]
    expected = convnet.head(convnet.act(a)).gather(1, r.target[:, None])[:, 0]
    assert torch.allclose(r.patched, expected, atol=1e-6)
    assert torch.equal(r.target, convnet(images).argmax(1))
    assert torch.allclose(r.restored, (r.patched - r.baseline_outputs) / (r.outputs - r.baseline_outputs))


def test_patch_nan_where_clean_equals_corrupt(convnet, images):
    r = patch(convnet, images, images.clone(), layer="conv", units=[0])
    assert torch.isnan(r.restored).all()


def test_patch_errors(convnet, images, model_state):
    before = model_state.snapshot(convnet)
    with pytest.raises(BaselineError, match=r"baseline of shape \(3, 1, 8, 8\) does not broadcast"):
        patch(convnet, images, images[:3], layer="conv")
    with pytest.raises(InputError, match="unit 9 is out of range"):
        patch(convnet, images, images, layer="conv", units=9)
    with pytest.raises(LayerError, match="unknown layer"):
        patch(convnet, images, images, layer="conv.x")
    model_state.assert_same(before, model_state.snapshot(convnet))


def test_reused_layer_is_rejected(model_state):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(self.lin(x))

    net = Twice()
    with pytest.raises(LayerError, match="ran 2 time.*pick one call site: 'lin@0', 'lin@1'"):
        ablate(net, torch.zeros(2, 3), layer="lin", units=0)
    with pytest.raises(LayerError, match="ran 2 time"):
        patch(net, torch.zeros(2, 3), torch.ones(2, 3), layer="lin")
    assert model_state.snapshot(net)["hooks"] == [0, 0]


def test_call_sites_of_a_reused_layer(model_state):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(self.lin(x))

    torch.manual_seed(0)
    net = Twice()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    lin = net.lin
    with torch.no_grad():
        # second call ablated: its unit 1 is zero before the (absent) rest of the model
        h = lin(lin(x))
        h[:, 1] = 0
        r = ablate(net, x, layer="lin@1", units=1, target=1)
        assert torch.allclose(r.after, h[:, 1]) and torch.equal(r.after, torch.zeros(5))
        # first call ablated: unit 2 of the inner output is zero, then the second call runs
        a = lin(x)
        a[:, 2] = 0
        r0 = ablate(net, x, layer="lin@0", units=2, target=0)
        assert torch.allclose(r0.after, lin(a)[:, 0], atol=1e-6)
        assert r0.layer == "lin@0"
        # patching the first call's whole output restores the inputs' answer exactly
        base = torch.zeros(5, 3)
        p = patch(net, x, base, layer="lin@0")
        assert torch.allclose(p.patched, p.outputs)
    with pytest.raises(LayerError, match="call site 'lin@2' does not exist"):
        ablate(net, x, layer="lin@2", units=0)
    assert model_state.snapshot(net)["hooks"] == [0, 0]


def test_patch_baseline_broadcasts_like_a_baseline(convnet, images):
    one = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(3))
    a = patch(convnet, images, one, layer="conv", units=[2])
    b = patch(convnet, images, one.expand(len(images), 1, 8, 8), layer="conv", units=[2])
    assert torch.equal(a.patched, b.patched) and torch.equal(a.baseline_outputs, b.baseline_outputs)
    zero = patch(convnet, images, 0.0, layer="conv", units=[2])
    assert torch.equal(zero.baseline_outputs, patch(convnet, images, torch.zeros_like(images), layer="conv",
                                                    units=[2]).baseline_outputs)


def test_old_keyword_and_field_names_warn_and_agree(convnet, images):
    corrupt = images.flip(0)
    new = patch(convnet, images, corrupt, layer="conv", units=[0, 3])
    with pytest.warns(DeprecationWarning, match=r"patch\(clean=...\) is deprecated.*inputs=") as seen:
        old = patch(convnet, clean=images, baseline=corrupt, layer="conv", units=[0, 3])
    assert seen[0].filename == __file__
    assert torch.equal(old.restored.nan_to_num(), new.restored.nan_to_num())
    with pytest.warns(DeprecationWarning, match=r"patch\(corrupt=...\).*baseline="):
        old = patch(convnet, images, corrupt=corrupt, layer="conv", units=[0, 3])
    assert torch.equal(old.patched, new.patched)
    with pytest.warns(DeprecationWarning, match=r"PatchResult.clean is deprecated.*\.outputs") as seen:
        assert torch.equal(new.clean, new.outputs)
    assert seen[0].filename == __file__  # the warning points at the caller
    with pytest.warns(DeprecationWarning, match=r"PatchResult.corrupt is deprecated.*\.baseline_outputs"):
        assert torch.equal(new.corrupt, new.baseline_outputs)
    with pytest.warns(DeprecationWarning, match=r"intervene\(data=...\).*inputs="):
        old = intervene(convnet, data=images, do={(0, 1, 1): 0.5})
    assert torch.equal(old.effect, intervene(convnet, images, do={(0, 1, 1): 0.5}).effect)


def test_results_are_tables_and_text(convnet, images):
    r = intervene(convnet, images, do={(0, 1, 1): 0.5}, target=2)
    assert r.table()[3] == {"row": 3, "target": 2, "before": float(r.before[3]),
                            "after": float(r.after[3]), "effect": float(r.effect[3])}
    assert str(r).startswith("do({(0, 1, 1): 0.5}): mean effect") and len(str(r).splitlines()) == 3 + 6
    a = ablate(convnet, images, layer="conv", units=[1])
    assert [row["effect"] for row in a.table()] == a.effect.tolist()
    assert "ablation of units [1] of 'conv'" in str(a)
    p = patch(convnet, images, images.flip(0), layer="conv", units=[0])
    assert [row["restored"] for row in p.table()] == pytest.approx(p.restored.tolist(), nan_ok=True)
    assert set(p.table()[0]) == {"row", "target", "outputs", "baseline_outputs", "patched", "restored"}
    assert "patching units [0] of 'conv'" in str(p)
