"""LIME: rankings on a linear model, determinism, agreement with the lime package, schemes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid.errors import BaselineError, InputError

W = torch.tensor([3.0, -2.0, 0.5, 1.0, -0.1, 4.0, 0.0, -1.5])


def _linear():
    lin = nn.Linear(8, 1)
    with torch.no_grad():
        lin.weight.copy_(W[None])
        lin.bias.fill_(0.3)
    return lin


def _data(n=3, b=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g), torch.randn(b, 8, generator=g)


def test_linear_model_ranks_features_by_abs_weight():
    x, bg = _data()
    bg = (bg - bg.mean(0)) / bg.std(0, unbiased=False)  # unit scale: coefficients are w itself
    expl = pellucid.lime(_linear(), x, background=bg, samples=2000, seed=0)
    order = torch.argsort(W.abs(), descending=True)
    for row in expl.values:
        assert torch.equal(torch.argsort(row.abs(), descending=True)[:7], order[:7])
    torch.testing.assert_close(expl.values, W.expand(3, -1), atol=0.05, rtol=0)
    assert (expl.per_row["r2"] > 0.999).all()
    torch.testing.assert_close(expl.per_row["local_prediction"], expl.outputs, atol=0.05, rtol=0)
    assert expl.per_row["coefficients"].shape == (3, 8) and expl.per_row["intercept"].shape == (3,)
    assert expl.method == "lime" and expl.baseline_outputs is None


def test_same_seed_agrees_exactly_and_global_rng_untouched():
    x, bg = _data()
    lin = _linear()
    state = torch.get_rng_state()
    a = pellucid.lime(lin, x, background=bg, samples=300, seed=4)
    b = pellucid.lime(lin, x, background=bg, samples=300, seed=4)
    c = pellucid.lime(lin, x, background=bg, samples=300, seed=5)
    assert torch.equal(a.values, b.values) and not torch.equal(a.values, c.values)
    assert torch.equal(state, torch.get_rng_state())
    assert a.params["seed"] == 4


@pytest.mark.slow
def test_agrees_with_lime_tabular():
    """Same scheme as ``LimeTabularExplainer(discretize_continuous=False)``: the two surrogates
    agree up to sampling noise. (lime's regression mode stores the coefficients under
    ``local_exp[1]`` and their negatives under ``local_exp[0]``, for its two-sided plot.)"""
    lime_tabular = pytest.importorskip("lime.lime_tabular")
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    x, bg = _data(1)
    ours = pellucid.lime(net, x, background=bg, samples=20000, seed=0).values[0]
    explainer = lime_tabular.LimeTabularExplainer(bg.numpy(), discretize_continuous=False,
                                                  mode="regression", random_state=0)
    f = lambda a: net(torch.as_tensor(a, dtype=torch.float32)).detach().numpy()[:, 0]  # noqa: E731
    res = explainer.explain_instance(x[0].numpy(), f, num_features=8, num_samples=20000)
    theirs = torch.zeros(8)
    for j, v in res.local_exp[1]:
        theirs[j] = v
    torch.testing.assert_close(ours, theirs, atol=0.03, rtol=0)


def test_discretized_scheme_marks_same_quartile():
    x, bg = _data()
    expl = pellucid.lime(_linear(), x, background=bg, samples=500, seed=0, discretize=True)
    assert expl.meta["scheme"] == "tabular" and expl.values.shape == (3, 8)
    # feature 6 has weight 0: its coefficient is noise only, smaller than the heavy ones
    assert (expl.values[:, 6].abs() < expl.values[:, 5].abs()).all()


def test_binary_masks_on_image_patches_find_the_patch_that_matters():
    def f(a):  # only the top-left 4x4 patch of channel 0 counts
        return a[:, 0, :4, :4].sum((1, 2))

    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.5
    groups = pellucid.attribution.grid_groups((1, 8, 8), 4)
    expl = pellucid.lime(f, x, groups=groups, samples=200, seed=0)
    assert expl.meta["scheme"] == "binary" and expl.meta["n_groups"] == 4
    g = expl.per_row["coefficients"]
    assert (g.argmax(1) == 0).all() and (g[:, 1:].abs() < 0.02 * g[:, :1]).all()
    torch.testing.assert_close(g[:, 0], x[:, 0, :4, :4].sum((1, 2)), atol=0, rtol=0.05)
    assert expl.values.shape == x.shape
    torch.testing.assert_close(expl.values[:, 0, 0, 0] * 16, g[:, 0])
    default = pellucid.lime(f, x, samples=50, seed=0)  # default grid of about 8 x 8 patches
    assert default.meta["n_groups"] == 64


def test_text_tokens_masked_with_a_pad_id():
    torch.manual_seed(0)
    emb = nn.EmbeddingBag(20, 4, mode="sum")
    head = nn.Linear(4, 2)
    model = lambda ids: head(emb(ids))  # noqa: E731
    ids = torch.tensor([[3, 5, 7, 9, 11], [2, 4, 6, 8, 10]])
    expl = pellucid.lime(model, ids, background=0, samples=300, seed=0, target=1)
    assert expl.values.shape == (2, 5) and expl.meta["scheme"] == "binary"
    assert expl.values.dtype == torch.get_default_dtype()


def test_errors():
    x, bg = _data()
    with pytest.raises(BaselineError, match="needs background"):
        pellucid.lime(_linear(), x)
    with pytest.raises(BaselineError, match="7 features but the inputs have 8"):
        pellucid.lime(_linear(), x, background=bg[:, :7])
    with pytest.raises(InputError, match="samples"):
        pellucid.lime(_linear(), x, background=bg, samples=1)
    with pytest.raises(InputError, match="do not cover"):
        pellucid.lime(_linear(), x, groups=[[0, 1, 2]])
    with pytest.raises(InputError, match="kernel_width"):
        pellucid.lime(_linear(), x, background=bg, kernel_width=0.0)


def test_slic_superpixels_one_map_per_image():
    pytest.importorskip("skimage")
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x[:, :, :, :8] += 1.0  # two clear regions
    f = lambda a: a[:, 0, :, :8].mean((1, 2))  # noqa: E731 - only the left half matters
    expl = pellucid.lime(f, x, groups="slic", samples=300, seed=0)
    gmap = expl.meta["groups"]
    assert gmap.shape == (2, 3 * 16 * 16) and expl.meta["n_groups"] >= 2
    left = expl.values[:, 0, :, :8].abs().sum((1, 2))
    right = expl.values[:, 0, :, 8:].abs().sum((1, 2))
    assert (left > right).all()
