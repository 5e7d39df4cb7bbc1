"""pellucid.plot's figures for pellucid.features."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from matplotlib.figure import Figure

from pellucid import features as F
from pellucid import plot
from pellucid.errors import PellucidError


def test_feature_maps_grid(cnn, images):
    acts = F.activations(cnn, images, layers=["features.0"])
    fig = plot.feature_maps(acts, 1, cols=4)
    assert isinstance(fig, Figure) and len([a for a in fig.axes if a.images]) == 6
    with pytest.raises(PellucidError, match="(C, H, W)"):
        plot.feature_maps(torch.zeros(2, 5))


def test_activation_stats_plot(cnn, images):
    fig = F.activation_stats(cnn, images).plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2


def test_maximized_plot(cnn):
    vis = F.maximize(cnn, F.class_logit(1), shape=(1, 8, 8), steps=3, images=3, seed=0)
    fig = vis.plot()
    assert isinstance(fig, Figure) and sum(1 for a in fig.axes if a.images) == 3


def test_attention_heads_token_strip_and_patch_heatmap():
    att = torch.rand(2, 3, 4, 5, 5).softmax(-1)
    tokens = ["[CLS]", "a", "good", "film", "[SEP]"]
    fig = plot.attention_heads(att, tokens, layer=1, index=1, heads=[0, 2])
    heat = [a for a in fig.axes if a.images and a.get_title().startswith("head")]
    assert len(heat) == 2
    assert [t.get_text() for t in heat[0].get_xticklabels()] == tokens
    torch.testing.assert_close(torch.as_tensor(heat[1].images[0].get_array().data),
                               att[1, 1, 2].double())
    fig = plot.token_strip(tokens, torch.tensor([0.0, 0.1, 2.0, -0.3, 0.0, 9.0]))
    assert [t.get_text() for t in fig.axes[0].texts] == tokens
    fig = plot.patch_heatmap(torch.arange(16.0), image=torch.rand(3, 32, 32))
    assert isinstance(fig, Figure)
    with pytest.raises(PellucidError, match="square"):
        plot.patch_heatmap(torch.arange(15.0))


def test_importing_features_does_not_import_matplotlib():
    code = "import sys, pellucid.features; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
