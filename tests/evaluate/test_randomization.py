"""Randomisation sanity checks: Spearman and SSIM by hand and against scipy/skimage/Quantus, and
the model / data randomisation tests on the planted-patch CNN."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from conftest import assert_same_state, import_peer, snapshot
from pellucid.errors import InputError, ModelError
from pellucid.evaluate import data_randomization, model_randomization
from pellucid.evaluate.randomization import layer_order, spearman, ssim
from pellucid.zoo import planted_patches, planted_tabular
from pellucid.zoo.digits import _train
from pellucid.zoo.planted import TabularMLP


# -- the similarity measures -----------------------------------------------------------------------
def test_spearman_matches_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (6, 40), generator=g).double()  # many ties
    b = a + torch.randn(6, 40, generator=g, dtype=torch.float64) * 2
    b[0] = torch.randint(0, 3, (40,), generator=g).double()
    ours = spearman(a, b)
    expected = [spearmanr(a[i].numpy(), b[i].numpy())[0] for i in range(6)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)
    # 2-D rows are flattened; a constant row has no rank correlation (NaN, as scipy)
    assert spearman(a.view(6, 4, 10), a.view(6, 4, 10)).tolist() == pytest.approx([1.0] * 6)
    assert math.isnan(spearman(torch.ones(1, 5), torch.arange(5.0)[None]).item())
    assert spearman(torch.tensor([[1.0, 2, 3]]), torch.tensor([[3.0, 2, 1]])).item() == pytest.approx(-1)


def _ssim_loop(a: np.ndarray, b: np.ndarray, size: int, sigma: float, rng: float) -> float:
    """SSIM written out window by window, for reference."""
    taps = np.arange(size) - (size - 1) / 2
    g = np.exp(-taps**2 / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    values = []
    for i in range(a.shape[0] - size + 1):
        for j in range(a.shape[1] - size + 1):
            pa, pb = a[i:i + size, j:j + size], b[i:i + size, j:j + size]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_identical_maps_score_one_and_match_skimage():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(4, 16, 16, generator=g, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(4, 16, 16, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert ssim(a, a).tolist() == pytest.approx([1.0] * 4, abs=1e-12)
    ours = ssim(a, b)
    rng = (a.amax(dim=(1, 2)) - a.amin(dim=(1, 2))).numpy()
    skimage_metrics = pytest.importorskip("skimage.metrics")
    ref = [skimage_metrics.structural_similarity(
        a[i].numpy(), b[i].numpy(), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=rng[i]) for i in range(4)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)


def test_ssim_on_small_maps_matches_a_loop():
    # 8x8 maps: the 11-tap window shrinks to 7 taps (sigma stays 1.5)
    g = torch.Generator().manual_seed(2)
    a = torch.randn(3, 8, 8, generator=g, dtype=torch.float64)
    b = a.flip(-1) + 0.1 * torch.randn(3, 8, 8, generator=g, dtype=torch.float64)
    ours = ssim(a, b, data_range=2.0)
    ref = [_ssim_loop(a[i].numpy(), b[i].numpy(), 7, 1.5, 2.0) for i in range(3)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)
    with pytest.raises(InputError):
        ssim(a, b[:2])


# -- layer order -----------------------------------------------------------------------------------
class OutOfOrder(nn.Module):
    """Defines its head before its body, shares one layer and never runs another."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.shared = nn.Linear(4, 4)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        h = self.conv(x).mean(dim=(1, 2))
        return self.fc(self.shared(torch.relu(self.shared(h))))


def test_layers_follow_execution_not_definition():
    assert layer_order(OutOfOrder(), torch.rand(2, 1, 3, 4)) == ["conv", "shared", "fc"]


# -- model randomisation on the planted CNN (the done-when) ---------------------------------
@pytest.fixture(scope="module")
def batch():
    return planted_patches(32, seed=5).x


def test_saliency_passes_and_the_input_control_fails(planted_cnn, batch):
    model, _ = planted_cnn
    sal = model_randomization(model, batch, method="saliency", similarity="both", seed=0)
    ctl = model_randomization(model, batch, method="input", similarity="both", seed=0)
    assert sal["spearman"].meta["layers"] == ["head", "features.4", "features.2", "features.0"]
    assert sal["spearman"].curves.shape == (32, 4) and not sal["spearman"].higher_is_better
    # randomising the top two layers decorrelates saliency; the input "explanation" never moves
    assert sal["spearman"].curves[:, 1].mean() < 0.5 and sal["ssim"].curves[:, 1].mean() < 0.6
    assert sal["spearman"].mean < 0.5 and sal["ssim"].mean < 0.5
    for s in ctl.values():
        assert torch.allclose(s.curves, torch.ones_like(s.curves), atol=1e-12)
    torch.testing.assert_close(sal["spearman"].values, sal["spearman"].curves[:, -1])


def test_seeded_and_leaves_the_model_untouched(planted_cnn, batch):
    model, _ = planted_cnn
    model.train()  # a non-default state, to be restored exactly
    try:
        before, rng = snapshot(model), torch.get_rng_state()
        a = model_randomization(model, batch[:16], method="gradient_x_input", seed=3)
        b = model_randomization(model, batch[:16], method="gradient_x_input", seed=3)
        c = model_randomization(model, batch[:16], method="gradient_x_input", seed=4)
        assert_same_state(before, snapshot(model))
        assert torch.equal(rng, torch.get_rng_state())
    finally:
        model.eval()
    assert torch.equal(a.curves, b.curves) and not torch.equal(a.curves, c.curves)
    assert a.meta["seed"] == 3 and a.meta["forward_rows"] == 5 * 16 + 1


def test_independent_stages_and_layer_given_as_module(planted_cnn, batch):
    model, info = planted_cnn
    casc = model_randomization(model, batch, method="saliency", seed=1)
    ind = model_randomization(model, batch, method="saliency", layers="independent", seed=1)
    # stage 1 randomises the head alone in both modes, with the same draw
    torch.testing.assert_close(ind.curves[:, 0], casc.curves[:, 0])
    torch.testing.assert_close(ind.values, torch.nanmean(ind.curves, dim=1))
    # a layer given as a module of the user's model is found in the copy
    before = snapshot(model)
    cam = model_randomization(model, batch, method="grad_cam", layer=model.features[4], seed=0)
    assert_same_state(before, snapshot(model))
    assert cam.mean < 0.5


def test_random_methods_get_the_same_seed_at_every_stage(planted_cnn, batch):
    model, _ = planted_cnn
    s = model_randomization(model, batch, method="random", seed=0)
    assert torch.allclose(s.curves, torch.ones_like(s.curves))


def test_agrees_with_quantus_mprt(planted_cnn, batch):
    """With Quantus's own randomisation (``torch.manual_seed(seed + 1); reset_parameters()``
    for each layer from the top) the Spearman curves agree to the last digit. Quantus 0.6's
    defects, not shared here:

    - ``get_random_layer_generator`` calls ``torch.manual_seed`` on the global RNG, so running
      MPRT changes the caller's random state (checked below);
    - layers are taken in ``named_modules`` (definition) order, not execution order: for
      ``OutOfOrder`` above its "top-down" order starts at ``unused`` and randomises ``conv``
      before ``shared``;
    - its ``ssim`` similarity receives the maps flattened to ``(batch, -1)`` and so computes a
      1-D SSIM along the flattened rows, not a 2-D SSIM of the image (checked below).
    """
    quantus = import_peer("quantus")
    model, _ = planted_cnn
    x = batch[:8]

    def explain(model, inputs, targets, **kwargs):
        from pellucid import saliency
        return saliency(model, torch.as_tensor(inputs), target=torch.as_tensor(targets)).values.numpy()

    def quantus_init(layer, generator):
        torch.manual_seed(43)
        layer.reset_parameters()

    ours = model_randomization(model, x, method="saliency", init=quantus_init, seed=0)
    with torch.no_grad():
        targets = model(x).argmax(1).numpy()
    state = torch.get_rng_state()
    theirs = quantus.MPRT(seed=42, disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=targets, a_batch=None, explain_func=explain,
        device="cpu")
    assert not torch.equal(state, torch.get_rng_state())  # Quantus moved the global RNG
    torch.set_rng_state(state)
    assert list(theirs)[1:] == ours.meta["layers"]
    np.testing.assert_allclose(np.array([theirs[k] for k in ours.meta["layers"]]).T,
                               ours.curves.numpy(), rtol=1e-9, atol=1e-12)
    # Quantus's named_modules order for a model defined out of order
    names = [n for n, m in OutOfOrder().named_modules() if hasattr(m, "reset_parameters")][::-1]
    assert names == ["unused", "shared", "conv", "fc"]
    # its SSIM on flattened maps is not the SSIM of the maps
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 16, 16, generator=g, dtype=torch.float64).unbind()
    flat = quantus.similarity_func.ssim(a.reshape(1, -1).numpy(), b.reshape(1, -1).numpy(),
                                        batched=True)[0]
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = float(max(a.max(), b.max()) - min(a.min(), b.min()))
    two_d = skimage_metrics.structural_similarity(a.numpy(), b.numpy(), data_range=rng)
    assert abs(flat - two_d) > 0.01


def test_bad_options_and_models(planted_cnn, batch):
    model, _ = planted_cnn
    with pytest.raises(ValueError, match="layers"):
        model_randomization(model, batch, method="saliency", layers="bottom_up")
    with pytest.raises(ValueError, match="similarity"):
        model_randomization(model, batch, method="saliency", similarity="pearson")
    with pytest.raises(ModelError, match="module"):
        model_randomization(lambda x: model(x), batch, method="saliency")
    mlp = TabularMLP(4)
    with pytest.raises(InputError, match="spearman"):
        model_randomization(mlp, torch.rand(3, 4), method="saliency", similarity="ssim")


# -- data randomisation ----------------------------------------------------------------------------
def test_data_randomization_with_a_model_trained_on_shuffled_labels():
    d = planted_tabular(600, features=6, informative=2, seed=0)
    shuffled = d.y[torch.randperm(600, generator=torch.Generator().manual_seed(0))]
    models = []
    for labels in (d.y, shuffled):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            m = TabularMLP(6)
            _train(m, types.SimpleNamespace(x_train=d.x, y_train=labels), seed=0, epochs=8,
                   verbose=False)
        models.append(m)
    x = planted_tabular(64, features=6, informative=2, seed=1).x
    sal = data_randomization(*models, x, method="saliency")
    same = data_randomization(models[0], models[0], x, method="saliency")
    ctl = data_randomization(*models, x, method="input")
    assert sal.name == "data_randomization_spearman" and sal.values.shape == (64,)
    assert sal.mean < 0.5 and same.mean == pytest.approx(1.0) and ctl.mean == pytest.approx(1.0)
