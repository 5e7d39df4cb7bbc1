"""pellucid.zoo.vit: the planted-patch ViT, its training and cache, and its maps on the patch grid."""
from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

import pellucid
from pellucid.zoo.planted import PATTERNS, planted_patches
from pellucid.zoo.vit import PatchViT, planted_vit, token_labels


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    # one cache per test session, shared with tests/attribution/test_cam_vit.py
    return planted_vit(cache_dir=tmp_path_factory.getbasetemp() / "planted_vit_cache")


def test_planted_vit_is_accurate_and_says_its_cam_layer(vit):
    model, info = vit
    assert isinstance(model, PatchViT) and not model.training
    assert info["test_accuracy"] >= 0.99  # 1.000 measured
    assert info["cam_layer"] == "norm" and info["grid"] == (4, 4)
    assert (info["patch"], info["size"], info["epochs"]) == (5, 20, 20)
    x, y, _ = planted_patches(300, size=20, seed=77)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() >= 0.99
        z = model.token_scores(x[:5])
        assert z.shape == (5, 17, 5)
        torch.testing.assert_close(model(x[:5]), z[:, 0] + z[:, 1:].logsumexp(dim=1))


def test_trains_caches_and_leaves_rng_and_threads(tmp_path):
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    model, info = planted_vit(cache_dir=tmp_path, epochs=1, train_size=128)
    assert torch.equal(state, torch.get_rng_state()) and torch.get_num_threads() == threads
    assert info["cached"] is False and info["train_seconds"] > 0
    assert info["path"].name == "planted_vit-n128-v1-seed0-e1.pt" and info["path"].is_file()
    again, info2 = planted_vit(cache_dir=tmp_path, epochs=1, train_size=128)
    assert info2["cached"] is True and info2["train_seconds"] == 0.0
    x = planted_patches(6, size=20, seed=9).x
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    fresh, info3 = planted_vit(pretrained=False, cache_dir=tmp_path)
    same, _ = planted_vit(pretrained=False, cache_dir=tmp_path)
    assert info3["cached"] is False and not info3["path"].exists()
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), same.state_dict().values()))


def test_token_labels_mark_the_planted_patch_only():
    x, y, mask = planted_patches(200, size=20, none=0.3, seed=5)
    labels = token_labels(y, mask, 5)
    none = len(PATTERNS)
    assert labels.shape == (200, 16)
    has = y != none
    # one patch per image with a pattern carries its class; every other patch is "none"
    assert torch.equal((labels != none).sum(dim=1), has.long())
    assert torch.equal(labels[has].min(dim=1).values, y[has])
    assert bool((labels[~has] == none).all())


def test_attention_rollout_maps_onto_the_grad_cam_grid(vit):
    model, info = vit
    x, _, mask = planted_patches(100, size=20, seed=12)
    cam = pellucid.grad_cam(model, x, layer=info["cam_layer"], upsample=False)
    rollout = pellucid.features.attention_rollout(model, x)
    assert rollout.shape == (100, 17, 17)
    torch.testing.assert_close(rollout.sum(dim=-1), torch.ones(100, 17))
    grid = tuple(cam.meta["layer_shape"])
    patches = rollout[:, 0, cam.meta["extra_tokens"]:]  # what [CLS] draws on, patch by patch
    assert patches.shape[1] == grid[0] * grid[1] == 16
    # [CLS] draws most on the planted patch, the patch Grad-CAM points at (99/100 measured)
    planted = torch.nn.functional.avg_pool2d(mask.float(), 5).flatten(1).argmax(dim=1)
    assert (patches.argmax(dim=1) == planted).float().mean() >= 0.9
    assert (cam.values.flatten(1).argmax(dim=1) == planted).float().mean() >= 0.95
    fig = pellucid.plot.patch_heatmap(patches[0], grid=grid, image=x[0], title="rollout")
    assert isinstance(fig, Figure)
    heat = fig.axes[0].images[-1].get_array()
    assert heat.shape == grid
    torch.testing.assert_close(torch.as_tensor(heat.data, dtype=torch.float32),
                               patches[0].view(grid))
