"""Grad-CAM and Grad-CAM++ against the CAM identity and their formulas evaluated by hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid


class GapNet(nn.Module):
    """conv -> ReLU -> global average pool -> linear: the network CAM was defined for."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 5, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        a = self.relu(self.conv(x))
        return self.fc(a.mean(dim=(2, 3)))


@pytest.fixture
def gap():
    torch.manual_seed(2)
    return GapNet(), torch.randn(4, 1, 6, 7)


def test_grad_cam_times_area_is_classic_cam(gap):
    net, x = gap
    e = pellucid.grad_cam(net, x, layer="relu", target=1, upsample=False)
    a = net.relu(net.conv(x)).detach()
    cam = torch.einsum("nchw,c->nhw", a, net.fc.weight[1].detach())
    torch.testing.assert_close(e.values[:, 0] * 6 * 7, cam.clamp_min(0), atol=1e-5, rtol=1e-5)
    assert e.values.shape == (4, 1, 6, 7) and e.meta["layer_shape"] == [6, 7]


def test_grad_cam_pp_by_hand(gap):
    net, x = gap
    e = pellucid.grad_cam_pp(net, x, layer=net.relu, target=2, upsample=False)
    a = net.relu(net.conv(x)).detach()
    # dy/dA is the same at every position here: g_k = W[2, k] / (H W).
    g = (net.fc.weight[2].detach() / 42).view(1, 5, 1, 1).expand_as(a)
    expected = torch.zeros(4, 6, 7)
    for n in range(4):
        for k in range(5):
            s = a[n, k].sum()
            w = 0.0
            for i in range(6):
                for j in range(7):
                    gk = float(g[n, k, i, j])
                    den = 2 * gk**2 + float(s) * gk**3
                    w += (gk**2 / den if den != 0 else 0.0) * max(gk, 0.0)
            expected[n] += w * a[n, k]
    torch.testing.assert_close(e.values[:, 0], expected.clamp_min(0), atol=1e-6, rtol=1e-4)


def test_grad_cam_pp_differs_from_summing_a_times_g_cubed():
    """A frequently copied implementation puts Σ(A·g³) in the denominator; ours is (ΣA)·g³."""
    from pellucid.attribution.cam import grad_cam_pp_weights

    a = torch.tensor([[[[1.0, 3.0]]]])
    g = torch.tensor([[[[0.5, 2.0]]]])
    # alpha = g²/(2g² + 4g³): [0.25/(0.5+0.5), 4/(8+32)] = [0.25, 0.1]; w = 0.25*0.5 + 0.1*2
    torch.testing.assert_close(grad_cam_pp_weights(a, g), torch.tensor([[0.325]]))


def test_grad_cam_upsamples_bilinearly(cnn, images):
    e = pellucid.grad_cam(cnn, images, layer="features.2")
    low = pellucid.grad_cam(cnn, images, layer="features.2", upsample=False)
    assert e.values.shape == (6, 1, 8, 8) and low.values.shape == (6, 1, 8, 8)
    e = pellucid.grad_cam(cnn, images, layer="features.4")  # after max pooling: 4x4
    low = pellucid.grad_cam(cnn, images, layer="features.4", upsample=False)
    assert low.values.shape == (6, 1, 4, 4) and e.values.shape == (6, 1, 8, 8)
    up = torch.nn.functional.interpolate(low.values, size=(8, 8), mode="bilinear",
                                         align_corners=False)
    torch.testing.assert_close(e.values, up)
    assert (e.values >= 0).all()


def test_relu_false_keeps_negative_evidence(cnn, images):
    e = pellucid.grad_cam(cnn, images, layer="features.2", relu=False, upsample=False)
    assert (e.values < 0).any()
    pos = pellucid.grad_cam(cnn, images, layer="features.2", upsample=False)
    torch.testing.assert_close(pos.values, e.values.clamp_min(0))
