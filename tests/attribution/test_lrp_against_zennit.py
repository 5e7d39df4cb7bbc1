"""LRP against Zennit on the same VGG-style CNN, inputs and composite, to 1e-4.

Zennit imports torchvision's ResNet block classes when it is imported, and torchvision does not
load here, so small stand-ins for ``torchvision``, ``torchvision.models`` and
``torchvision.models.resnet`` are put into ``sys.modules`` first (only if torchvision itself
cannot be imported).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from conftest import import_peer
from pellucid.attribution.relevance import rules


zennit = import_peer("zennit")
from zennit.attribution import Gradient  # noqa: E402
from zennit import composites as zc, rules as zr  # noqa: E402
from zennit.types import Convolution  # noqa: E402


def vgg() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 5),
    ).eval()


def zennit_relevance(model, x, target, composite):
    x = x.clone().requires_grad_(True)
    with Gradient(model=model, composite=composite) as attributor:
        out, relevance = attributor(x, torch.eye(5)[target] * 1.0)
    # Zennit seeds the backward with the one-hot vector; pellucid with the output itself.
    return relevance * model(x).gather(1, target[:, None]).detach().view(-1, 1, 1, 1)


ZENNIT = {
    "epsilon": lambda: zc.LayerMapComposite(
        layer_map=zc.layer_map_base() + [(Convolution, zr.Epsilon(1e-6)),
                                         (nn.Linear, zr.Epsilon(1e-6))]),
    "epsilon_plus_flat": lambda: zc.EpsilonPlusFlat(),
    "epsilon_gamma_box": lambda: zc.EpsilonGammaBox(low=-1.0, high=2.0),
    "alpha1_beta0": lambda: zc.LayerMapComposite(
        layer_map=zc.layer_map_base() + [(Convolution, zr.AlphaBeta(1, 0)),
                                         (nn.Linear, zr.AlphaBeta(1, 0))]),
    "epsilon_alpha2_beta1": lambda: zc.EpsilonAlpha2Beta1(),
    "epsilon_plus": lambda: zc.EpsilonPlus(),
}


@pytest.mark.parametrize("name", list(ZENNIT))
def test_builtin_composites_match_zennit(name):
    model = vgg()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 3, 16, 16, generator=g) * 3 - 1  # within [-1, 2], the ZBox bounds
    target = torch.tensor([0, 1, 2, 3, 4, 0])
    ours = pellucid.lrp(model, x, target=target, composite=name, low=-1.0, high=2.0)
    theirs = zennit_relevance(model, x, target, ZENNIT[name]())
    scale = theirs.abs().max()
    torch.testing.assert_close(ours.values / scale, theirs / scale, atol=1e-4, rtol=0)


def test_user_dict_composite_matches_zennit():
    model = vgg()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    target = torch.tensor([1, 2, 3, 4])
    ours = pellucid.lrp(model, x, target=target, composite={
        "0": rules.ZBox(0, 1), nn.Conv2d: rules.Gamma(0.5), nn.Linear: rules.Epsilon(0.01)})
    theirs = zennit_relevance(model, x, target, zc.NameLayerMapComposite(
        name_map=[(("0",), zr.ZBox(0.0, 1.0))],
        layer_map=zc.layer_map_base() + [(Convolution, zr.Gamma(0.5)),
                                         (nn.Linear, zr.Epsilon(0.01))]))
    scale = theirs.abs().max()
    torch.testing.assert_close(ours.values / scale, theirs / scale, atol=1e-4, rtol=0)


def test_flat_and_wsquare_first_layer_match_zennit():
    model = vgg()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    target = torch.tensor([0, 1, 2, 3])
    for ours_rule, theirs_rule in ((rules.WSquare(), zr.WSquare()), (rules.Flat(), zr.Flat())):
        ours = pellucid.lrp(model, x, target=target, composite=pellucid.attribution.relevance.Composite(
            first=ours_rule, conv=rules.ZPlus(), dense=rules.Epsilon()))
        theirs = zennit_relevance(model, x, target, zc.SpecialFirstLayerMapComposite(
            layer_map=zc.layer_map_base() + [(Convolution, zr.ZPlus()), (nn.Linear, zr.Epsilon())],
            first_map=[(Convolution, theirs_rule)]))
        scale = theirs.abs().max()
        torch.testing.assert_close(ours.values / scale, theirs / scale, atol=1e-4, rtol=0)
