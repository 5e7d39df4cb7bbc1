"""Max- and avg-sensitivity: hand-computed cases, batching of the re-explanations, seeds, and
agreement with Quantus on the same noise."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pellucid
from pellucid import evaluate as ev
from pellucid.errors import PellucidError
from pellucid.evaluate import robustness


def summing(features: int) -> nn.Module:
    net = nn.Linear(features, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    return net


def test_a_constant_gradient_is_perfectly_robust():
    # The gradient of a linear model does not depend on x: every re-explanation is identical.
    net = nn.Linear(5, 3)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    e = pellucid.saliency(net, x, target=1, abs=False)
    assert ev.max_sensitivity(net, e, samples=10, seed=0).values.tolist() == [0.0] * 4
    assert ev.avg_sensitivity(net, e, samples=10, seed=0).values.tolist() == [0.0] * 4


def test_gradient_x_input_of_a_sum_by_hand():
    # f = Σ x_j, φ = x, so φ(x + ε) − φ(x) = ε: at x = 1 in d = 2000 dimensions the ratio is
    # ‖ε‖ / √d ≤ r (every |ε_j| ≤ r), and with ε_j ~ U[-r, r] it is √(mean ε_j²) ≈ r / √3.
    d, r = 2000, 0.3
    net, x = summing(d), torch.ones(2, d)
    e = pellucid.gradient_x_input(net, x)
    ratios, meta = robustness.sensitivities(net, e, samples=20, radius=r, seed=0)
    assert ratios.shape == (2, 20) and meta["norm"] == "fro"
    assert bool((ratios <= r).all())
    assert ratios.mean().item() == pytest.approx(r / math.sqrt(3), rel=0.02)
    assert ev.max_sensitivity(net, e, samples=20, radius=r, seed=0).values.tolist() == pytest.approx(
        ratios.max(dim=1).values.tolist())
    assert ev.avg_sensitivity(net, e, samples=20, radius=r, seed=0).values.tolist() == pytest.approx(
        ratios.mean(dim=1).tolist())
    # The noise itself: uniform in the L∞ ball, seeded, the same however it is chunked.
    eps = robustness._noise(5, 0, 64, (3,), 0.1, torch.device("cpu"), torch.float32)
    assert eps.abs().max() <= 0.1 and eps.abs().max() > 0.09
    parts = torch.cat([robustness._noise(5, a, b, (3,), 0.1, torch.device("cpu"), torch.float32)
                       for a, b in ((0, 7), (7, 40), (40, 64))])
    assert torch.equal(eps, parts)


def test_re_explanations_are_batched_and_keep_the_method_and_target(cnn, images):
    """All n·samples noisy copies go through the method in a few chunks, never one per sample."""
    e = pellucid.integrated_gradients(cnn, images, target=2, steps=4)
    rows: list[int] = []
    handle = cnn.register_forward_pre_hook(lambda _m, inputs: rows.append(len(inputs[0])))
    try:
        score = ev.max_sensitivity(cnn, e, samples=8, seed=0, batch_size=32)
    finally:
        handle.remove()
    # 6 rows x 8 samples = 48 copies in 2 calls of IG (24 copies each); each call runs its
    # 24·4 path rows in chunks of at most 32 plus its own 2·24 end points.
    assert max(rows) <= 32
    assert sum(rows) == 48 * 4 + 2 * 48 == score.meta["forward_rows"]
    assert len(rows) == 2 * (math.ceil(24 * 4 / 32) + math.ceil(48 / 32))
    assert score.meta["method"] == "integrated_gradients" and score.meta["backward_rows"] == 192


def test_sensitivity_is_deterministic_under_a_seed_at_any_batch_size(cnn, images):
    e = pellucid.saliency(cnn, images, abs=False)
    a = ev.avg_sensitivity(cnn, e, samples=12, seed=3)
    b = ev.avg_sensitivity(cnn, e, samples=12, seed=3, batch_size=25)
    assert torch.allclose(a.values, b.values, atol=1e-6) and a.meta["seed"] == 3
    assert not torch.equal(a.values, ev.avg_sensitivity(cnn, e, samples=12, seed=4).values)
    free = ev.max_sensitivity(cnn, e, samples=5)
    assert torch.equal(free.values, ev.max_sensitivity(cnn, e, samples=5, seed=free.meta["seed"]).values)


def test_smoothgrad_is_more_robust_than_saliency(cnn, images):
    sal = pellucid.saliency(cnn, images, abs=False)
    smooth = pellucid.smoothgrad(cnn, images, samples=16, abs=False, seed=0)
    assert ev.avg_sensitivity(cnn, smooth, samples=6, radius=0.1, seed=0).mean < \
        ev.avg_sensitivity(cnn, sal, samples=6, radius=0.1, seed=0).mean


def test_model_left_as_found_and_errors(cnn, images, model_state):
    e = pellucid.saliency(cnn, images)
    cnn.train()
    before = model_state.snapshot(cnn)
    ev.max_sensitivity(cnn, e, samples=3, seed=0)
    model_state.assert_same(before, model_state.snapshot(cnn))
    e.method = ""
    with pytest.raises(PellucidError, match="names no method"):
        ev.max_sensitivity(cnn, e)
    with pytest.raises(ValueError, match="radius"):
        ev.avg_sensitivity(cnn, pellucid.saliency(cnn, images), radius=0)


def test_sensitivity_agrees_with_quantus_on_the_same_noise(peer):
    """Quantus' MaxSensitivity/AvgSensitivity (Frobenius norms, ratio to ‖φ(x)‖) fed our uniform
    noise through a custom ``perturb_func`` give the same scores."""
    quantus = peer("quantus")
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn()
    data = load_digits()
    x, y = data.x_test[:8], data.y_test[:8]
    e = pellucid.saliency(model, x, target=y, abs=False)
    n, samples, radius, seed = len(x), 6, 0.1, 3
    noise = robustness._noise(seed, 0, n * samples, x.shape[1:], radius, torch.device("cpu"),
                              x.dtype).view(n, samples, -1).numpy()
    step = [0]

    def perturb(arr, indices=None, indexed_axes=None, **_):
        out = arr + noise[:, step[0]].reshape(arr.shape)
        step[0] += 1
        return out

    def explain(model, inputs, targets, **_):
        return pellucid.saliency(model, torch.as_tensor(inputs), target=torch.as_tensor(targets),
                                 abs=False).values.numpy()

    for peer, ours in ((quantus.MaxSensitivity, ev.max_sensitivity),
                       (quantus.AvgSensitivity, ev.avg_sensitivity)):
        step[0] = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = peer(nr_samples=samples, perturb_func=perturb, disable_warnings=True)(
                model=model, x_batch=x.numpy().copy(), y_batch=y.numpy().copy(),
                a_batch=e.values.numpy().copy(), explain_func=explain, softmax=False,
                channel_first=True, device="cpu")
        score = ours(model, e, samples=samples, radius=radius, seed=seed)
        np.testing.assert_allclose(score.values.double().numpy(), np.asarray(theirs), rtol=1e-5)
