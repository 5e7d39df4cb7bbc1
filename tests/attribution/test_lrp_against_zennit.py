"""LRP against Zennit on the same VGG-style CNN, inputs and composite, to 1e-4.

Zennit imports torchvision's ResNet block classes when it is imported, and torchvision does not
load here: the ``peer`` fixture lends stand-ins for the import only (see tests/conftest.py).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid.attribution.relevance import rules


@pytest.fixture(scope="module")
def zennit(peer):
    """Zennit's attributor, composites, rules and layer types (the test skips without zennit)."""
    import types

    peer("zennit")
    from zennit import composites, rules
    from zennit.attribution import Gradient
    from zennit.types import Convolution

    return types.SimpleNamespace(Gradient=Gradient, zc=composites, zr=rules, Convolution=Convolution)


def vgg() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 5),
    ).eval()


def zennit_relevance(zennit, model, x, target, composite):
    x = x.clone().requires_grad_(True)
    with zennit.Gradient(model=model, composite=composite) as attributor:
        out, relevance = attributor(x, torch.eye(5)[target] * 1.0)
    # Zennit seeds the backward with the one-hot vector; pellucid with the output itself.
    return relevance * model(x).gather(1, target[:, None]).detach().view(-1, 1, 1, 1)


ZENNIT = {
    "epsilon": lambda z: z.zc.LayerMapComposite(
        layer_map=z.zc.layer_map_base() + [(z.Convolution, z.zr.Epsilon(1e-6)),
                                         (nn.Linear, z.zr.Epsilon(1e-6))]),
    "epsilon_plus_flat": lambda z: z.zc.EpsilonPlusFlat(),
    "epsilon_gamma_box": lambda z: z.zc.EpsilonGammaBox(low=-1.0, high=2.0),
    "alpha1_beta0": lambda z: z.zc.LayerMapComposite(
        layer_map=z.zc.layer_map_base() + [(z.Convolution, z.zr.AlphaBeta(1, 0)),
                                         (nn.Linear, z.zr.AlphaBeta(1, 0))]),
    "epsilon_alpha2_beta1": lambda z: z.zc.EpsilonAlpha2Beta1(),
    "epsilon_plus": lambda z: z.zc.EpsilonPlus(),
}


@pytest.mark.parametrize("name", list(ZENNIT))
def test_builtin_composites_match_zennit(name, zennit):
    model = vgg()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 3, 16, 16, generator=g) * 3 - 1  # within [-1, 2], the ZBox bounds
    target = torch.tensor([0, 1, 2, 3, 4, 0])
    ours = pellucid.lrp(model, x, target=target, composite=name, low=-1.0, high=2.0)
    theirs = zennit_relevance(zennit, model, x, target, ZENNIT[name](zennit))
    scale = theirs.abs().max()
    torch.testing.assert_close(ours.values / scale, theirs / scale, atol=1e-4, rtol=0)


def test_user_dict_composite_matches_zennit(zennit):
    model = vgg()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    target = torch.tensor([1, 2, 3, 4])
    ours = pellucid.lrp(model, x, target=target, composite={
        "0": rules.ZBox(0, 1), nn.Conv2d: rules.Gamma(0.5), nn.Linear: rules.Epsilon(0.01)})
    theirs = zennit_relevance(zennit, model, x, target, zennit.zc.NameLayerMapComposite(
        name_map=[(("0",), zennit.zr.ZBox(0.0, 1.0))],
        layer_map=zennit.zc.layer_map_base() + [(zennit.Convolution, zennit.zr.Gamma(0.5)),
                                         (nn.Linear, zennit.zr.Epsilon(0.01))]))
    scale = theirs.abs().max()
    torch.testing.assert_close(ours.values / scale, theirs / scale, atol=1e-4, rtol=0)


def test_flat_and_wsquare_first_layer_match_zennit(zennit):
    model = vgg()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    target = torch.tensor([0, 1, 2, 3])
    for ours_rule, theirs_rule in ((rules.WSquare(), zennit.zr.WSquare()), (rules.Flat(), zennit.zr.Flat())):
        ours = pellucid.lrp(model, x, target=target, composite=pellucid.attribution.relevance.Composite(
            first=ours_rule, conv=rules.ZPlus(), dense=rules.Epsilon()))
        theirs = zennit_relevance(zennit, model, x, target, zennit.zc.SpecialFirstLayerMapComposite(
            layer_map=zennit.zc.layer_map_base() + [(zennit.Convolution, zennit.zr.ZPlus()),
                                                    (nn.Linear, zennit.zr.Epsilon())],
            first_map=[(zennit.Convolution, theirs_rule)]))
        scale = theirs.abs().max()
        torch.testing.assert_close(ours.values / scale, theirs / scale, atol=1e-4, rtol=0)
