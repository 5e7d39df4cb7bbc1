"""Grad-CAM on vision transformers: token activations (n, tokens, dim) laid out on the patch grid.

Checked against Grad-CAM computed by hand from the hidden states of Hugging Face ViT / DeiT
models (random weights from small configs), on the planted-patch ViT of the zoo (the planted
patch must be the map's argmax), and for the errors of layers whose tokens are no grid.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pellucid
from pellucid.errors import InputError, LayerError
from pellucid.zoo.planted import planted_patches
from pellucid.zoo.vit import planted_vit

transformers = pytest.importorskip("transformers")


def _config(cls, image_size=16, **kw):
    return cls(image_size=image_size, patch_size=4, num_channels=1, hidden_size=32,
               num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=5, **kw)


@pytest.fixture(scope="module")
def hf_vit():
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(_config(transformers.ViTConfig)).eval()


@pytest.fixture(scope="module")
def x16():
    return torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(3))


def hand_cam(model, x, target, block, extra, grid, pp=False):
    """Grad-CAM from the model's own hidden states: the output of ``block`` (hidden_states[block
    + 1]), its gradient, the first ``extra`` tokens dropped, the rest laid out row by row."""
    out = model(x, output_hidden_states=True)
    acts = out.hidden_states[block + 1]
    y = out.logits[torch.arange(len(x)), target].sum()
    (grads,) = torch.autograd.grad(y, acts)
    h, w = grid
    a = acts[:, extra:].detach().reshape(len(x), h, w, -1).permute(0, 3, 1, 2)
    g = grads[:, extra:].reshape(len(x), h, w, -1).permute(0, 3, 1, 2)
    if pp:  # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3), weights = sum(alpha relu(g))
        den = 2 * g ** 2 + a.sum(dim=(2, 3), keepdim=True) * g ** 3
        alpha = torch.where(den != 0, g ** 2 / torch.where(den != 0, den, 1.0), 0.0)
        weights = (alpha * g.clamp_min(0)).sum(dim=(2, 3))
    else:
        weights = g.mean(dim=(2, 3))
    return torch.einsum("nchw,nc->nhw", a, weights).clamp_min(0)[:, None]


@pytest.mark.parametrize("method", ["grad_cam", "grad_cam_pp"])
def test_hf_vit_equals_grad_cam_by_hand(hf_vit, x16, method, model_state):
    target = torch.tensor([0, 1, 2, 3])
    before = model_state.snapshot(hf_vit)
    e = getattr(pellucid, method)(hf_vit, x16, target=target, layer="vit.layers.0", upsample=False)
    model_state.assert_same(before, model_state.snapshot(hf_vit))
    expected = hand_cam(hf_vit, x16, target, 0, 1, (4, 4), pp=method == "grad_cam_pp")
    assert e.values.shape == (4, 1, 4, 4)
    assert e.meta["layer_shape"] == [4, 4] and e.meta["extra_tokens"] == 1
    torch.testing.assert_close(e.values, expected, atol=1e-6, rtol=1e-5)
    assert expected.amax() > 0  # not a trivially zero map
    up = getattr(pellucid, method)(hf_vit, x16, target=target, layer="vit.layers.0")
    assert up.values.shape == (4, 1, 16, 16) and up.kind == "image"
    torch.testing.assert_close(up.values, F.interpolate(expected, size=(16, 16), mode="bilinear",
                                                         align_corners=False), atol=1e-6, rtol=1e-5)


def test_hf_vit_explicit_grid_and_the_last_block_input(hf_vit, x16):
    inferred = pellucid.grad_cam(hf_vit, x16, layer="vit.layers.0", upsample=False)
    given = pellucid.grad_cam(hf_vit, x16, layer="vit.layers.0", grid=(4, 4), upsample=False)
    torch.testing.assert_close(given.values, inferred.values)
    assert given.params["grid"] == (4, 4) and inferred.params["grid"] is None
    # any grid that fits is honoured: 2 x 8 patches, the one leading token dropped
    odd = pellucid.grad_cam(hf_vit, x16, layer="vit.layers.0", grid=[2, 8], upsample=False)
    assert odd.values.shape == (4, 1, 2, 8) and odd.meta["extra_tokens"] == 1
    # the usual ViT layer: the last block's first LayerNorm, tokens (n, 17, 32)
    e = pellucid.grad_cam(hf_vit, x16, layer="vit.layers.1.layernorm_before")
    assert e.values.shape == (4, 1, 16, 16) and e.meta["layer_shape"] == [4, 4]
    assert bool((e.values > 0).any())


def test_deit_drops_the_class_and_distillation_tokens(x16):
    torch.manual_seed(1)
    deit = transformers.DeiTForImageClassificationWithTeacher(_config(transformers.DeiTConfig)).eval()
    target = torch.tensor([4, 3, 2, 1])
    e = pellucid.grad_cam(deit, x16, target=target, layer="deit.layers.0", upsample=False)
    assert e.meta["extra_tokens"] == 2 and e.values.shape == (4, 1, 4, 4)
    torch.testing.assert_close(e.values, hand_cam(deit, x16, target, 0, 2, (4, 4)),
                               atol=1e-6, rtol=1e-5)


def test_non_square_images_get_a_grid_with_their_aspect_ratio():
    torch.manual_seed(2)
    vit = transformers.ViTForImageClassification(
        _config(transformers.ViTConfig, image_size=(16, 12))).eval()
    x = torch.rand(3, 1, 16, 12, generator=torch.Generator().manual_seed(4))
    e = pellucid.grad_cam(vit, x, target=1, layer="vit.layers.0", upsample=False)
    assert e.meta["layer_shape"] == [4, 3] and e.meta["extra_tokens"] == 1
    torch.testing.assert_close(e.values, hand_cam(vit, x, torch.ones(3, dtype=torch.long), 0, 1,
                                                  (4, 3)), atol=1e-6, rtol=1e-5)
    assert pellucid.grad_cam(vit, x, target=1, layer="vit.layers.0").values.shape == (3, 1, 16, 12)


class TupleViT(nn.Module):
    """Patch tokens through a block that returns ``(tokens, attention weights)``, as HF layers
    did before transformers 5; a mean over the patch tokens feeds the head (no class token)."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, t):
            out, weights = self.attn(t, t, t)
            return t + out, weights

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.embed = nn.Conv2d(1, 8, 3, stride=3)
        self.block = self.Block()
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(torch.tanh(self.block(t)[0]).mean(dim=1))


def test_a_block_returning_a_tuple_is_read_at_its_first_tensor():
    model = TupleViT().eval()
    x = torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(6))
    e = pellucid.grad_cam(model, x, target=2, layer="block", relu=False, upsample=False)
    assert e.meta["layer_shape"] == [3, 3] and e.meta["extra_tokens"] == 0
    t = model.embed(x).flatten(2).transpose(1, 2)
    a = model.block(t)[0]
    (g,) = torch.autograd.grad(model.head(torch.tanh(a).mean(dim=1))[:, 2].sum(), a)
    expected = (a * g.mean(dim=1, keepdim=True)).sum(-1).detach().view(2, 1, 3, 3)
    torch.testing.assert_close(e.values, expected, atol=1e-6, rtol=1e-5)


class Latents(nn.Module):
    """Image -> 7 latent tokens (n, 7, 8): not a patch grid."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.embed = nn.Linear(64, 7 * 8)
        self.latents = nn.Identity()
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        t = self.latents(self.embed(x.flatten(1)).view(len(x), 7, 8))
        return self.head(t.mean(dim=1))


def test_tokens_that_form_no_grid_are_a_layer_error_naming_grid():
    model, x = Latents(), torch.rand(2, 1, 8, 8)
    with pytest.raises(LayerError, match=r"7 tokens.*grid=\(rows, cols\)"):
        pellucid.grad_cam(model, x, layer="latents")
    with pytest.raises(LayerError, match="grid=\\(3, 3\\) holds 9 patches, but layer 'latents' gives 7"):
        pellucid.grad_cam(model, x, layer="latents", grid=(3, 3))
    # with the grid given, the leading tokens beyond it are dropped
    e = pellucid.grad_cam(model, x, layer="latents", grid=(2, 3), upsample=False)
    assert e.values.shape == (2, 1, 2, 3) and e.meta["extra_tokens"] == 1


def test_bad_grids_and_grid_on_a_convolution(cnn, images, hf_vit, x16):
    for bad in ["4x4", (4,), (4, 0), (2.5, 2)]:
        with pytest.raises(InputError, match="grid"):
            pellucid.grad_cam(hf_vit, x16, layer="vit.layers.0", grid=bad)
    with pytest.raises(LayerError, match="drop grid="):
        pellucid.grad_cam(cnn, images, layer="features.2", grid=(8, 8))


def test_conv1d_outputs_keep_the_channel_first_path():
    """(n, C, L) activations on (n, C, L) inputs are a Conv1d's channels, not tokens."""
    torch.manual_seed(8)
    conv, head = nn.Conv1d(2, 4, 3, padding=1), nn.Linear(4, 3)
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), head).eval()
    x = torch.randn(3, 2, 10)
    e = pellucid.grad_cam(model, x, target=0, layer="1", upsample=False)
    a = torch.relu(conv(x)).detach()
    torch.testing.assert_close(e.values[:, 0], (a * head.weight[0].detach()[:, None] / 10)
                               .sum(1).clamp_min(0), atol=1e-6, rtol=1e-5)
    assert "extra_tokens" not in e.meta


# -- the planted-patch ViT (the done-when) -------------------------------------------------
@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    # one cache per test session, shared with tests/zoo/test_vit.py: trained once (about 3 s)
    return planted_vit(cache_dir=tmp_path_factory.getbasetemp() / "planted_vit_cache")


@pytest.fixture(scope="module")
def planted():
    return planted_patches(100, size=20, seed=2024)


def _planted_patch(mask, patch=5):
    """Index (row-major on the grid) of the patch that holds the planted pattern."""
    return F.avg_pool2d(mask.float(), patch).flatten(1).argmax(dim=1)


def test_planted_vit_grad_cam_points_at_the_planted_patch(vit, planted):
    model, info = vit
    x, y, mask = planted
    cam = pellucid.grad_cam(model, x, layer=info["cam_layer"])
    assert cam.values.shape == (100, 1, 20, 20) and cam.meta["layer_shape"] == [4, 4]
    assert cam.meta["extra_tokens"] == 1
    truth = _planted_patch(mask)
    # the map's argmax pixel lies in the planted patch (100/100 measured)
    top = cam.values.flatten(1).argmax(dim=1)
    patch_of_top = (top // 20 // 5) * 4 + (top % 20) // 5
    assert (patch_of_top == truth).float().mean() >= 0.95
    # the same on the grid itself
    low = pellucid.grad_cam(model, x, layer=info["cam_layer"], upsample=False)
    assert (low.values.flatten(1).argmax(dim=1) == truth).float().mean() >= 0.95
    # a random map points at the planted patch 1 time in 16
    rnd = torch.rand(100, 16, generator=torch.Generator().manual_seed(0)).argmax(dim=1)
    assert (rnd == truth).float().mean() < 0.2


def test_planted_vit_map_is_each_patch_class_score(vit, planted):
    """At ``norm`` the mean gradient over the patch tokens is head.weight[t] / 16 (log-sum-exp
    weights sum to 1), so the map is each patch's class score less the head's bias, over 16."""
    model, info = vit
    x, y, _ = planted
    e = pellucid.grad_cam(model, x, target=y, layer="norm", relu=False, upsample=False)
    with torch.no_grad():
        scores = model.token_scores(x)[:, 1:, :]
    expected = (scores[torch.arange(100), :, y] - model.head.bias[y, None].detach()) / 16
    torch.testing.assert_close(e.values.flatten(1), expected, atol=1e-5, rtol=1e-4)


def test_planted_vit_transformer_block_output(vit, planted):
    """An nn.TransformerEncoderLayer's output, [CLS] first, is read on its grid as well."""
    model, _ = vit
    x, _, mask = planted
    e = pellucid.grad_cam(model, x, layer="encoder.layers.1", upsample=False)
    assert e.meta["extra_tokens"] == 1 and e.values.shape == (100, 1, 4, 4)
    assert (e.values.flatten(1).argmax(dim=1) == _planted_patch(mask)).float().mean() >= 0.9
