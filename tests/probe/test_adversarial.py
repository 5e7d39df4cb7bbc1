"""Adversarial attacks (pellucid.probe.adversarial) against hand-derived answers and Captum."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pellucid import errors
from pellucid.probe import AttackResult, RobustnessCurve, fgsm, pgd, robustness_curve


def _linear(seed: int = 0, d: int = 5, k: int = 2) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(d, k)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(k, d, generator=g))
        lin.bias.copy_(torch.randn(k, generator=g))
    return lin


@pytest.fixture(scope="module")
def digits():
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn()
    d = load_digits()
    return model, d.x_test[:100], d.y_test[:100]


# -- FGSM on a linear model: the answer by hand -------------------------------------------------
# For logits z = W x + b with two classes, CE(z, c) = -z_c + logsumexp(z), so
# dCE/dx = -w_c + p_c w_c + p_o w_o = p_o (w_o - w_c), and p_o > 0: the untargeted FGSM step is
# exactly eps * sign(w_o - w_c); the targeted step toward c is the opposite, eps * sign(w_c - w_o).
@pytest.mark.parametrize("clamp", [None, (-10.0, 10.0)])
def test_fgsm_linear_two_class_by_hand(clamp):
    lin = _linear(1)
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(2))
    eps = 0.25
    r = fgsm(lin, x, eps=eps, clamp=clamp)
    c = (x @ lin.weight.T + lin.bias).argmax(1)
    w = lin.weight.detach()
    expected = x + eps * torch.sign(w[1 - c] - w[c])
    assert torch.equal(r.target, c) and torch.equal(r.original_predictions, c)
    torch.testing.assert_close(r.adversarial, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(r.perturbation_norm["linf"], torch.full((16,), eps), rtol=0, atol=1e-6)
    torch.testing.assert_close(r.perturbation_norm["l2"], torch.full((16,), eps * 5 ** 0.5),
                               rtol=0, atol=1e-5)
    assert torch.equal(r.predictions, (r.adversarial @ w.T + lin.bias).argmax(1))
    assert torch.equal(r.success, r.predictions != c)
    # targeted toward class 0: the step goes down the loss of class 0, i.e. along w_0 - w_1
    t = fgsm(lin, x, eps=eps, target=0, targeted=True, clamp=clamp)
    torch.testing.assert_close(t.adversarial, x + eps * torch.sign(w[0] - w[1]), rtol=0, atol=1e-6)
    assert torch.equal(t.success, t.predictions == 0)


def test_fgsm_clamps_and_counts():
    lin = _linear(3)
    x = torch.rand(10, 5, generator=torch.Generator().manual_seed(0))
    r = fgsm(lin, x, eps=0.5, batch_size=3)
    assert float(r.adversarial.min()) >= 0 and float(r.adversarial.max()) <= 1
    assert r.meta["forward_rows"] == 20 and r.meta["backward_rows"] == 10 and r.meta["eps"] == 0.5
    assert isinstance(r, AttackResult) and len(r) == 10
    torch.testing.assert_close(fgsm(lin, x, eps=0.5).adversarial, r.adversarial)  # chunking changes nothing


# -- PGD stays in the ball and the range --------------------------------------------------------
_MODELS = {k: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, k)) for k in (2, 3)}


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    eps=st.floats(0.0, 1.5),
    steps=st.integers(1, 6),
    step_mult=st.floats(0.1, 4.0),
    norm=st.sampled_from(["linf", "l2"]),
    k=st.sampled_from([2, 3]),
    clamp=st.sampled_from([(0.0, 1.0), None]),
    random_start=st.booleans(),
    targeted=st.booleans(),
)
def test_pgd_never_leaves_ball_or_range(seed, eps, steps, step_mult, norm, k, clamp, random_start, targeted):
    x = torch.rand(7, 6, generator=torch.Generator().manual_seed(seed % 1000))
    r = pgd(
        _MODELS[k], x, eps=eps, steps=steps, step_size=step_mult * eps / steps, norm=norm,
        random_start=random_start, clamp=clamp, seed=seed, target=0 if targeted else None,
        targeted=targeted,
    )
    assert bool(r.perturbation_norm[norm].le(eps + 1e-5).all())
    if clamp is not None:
        assert float(r.adversarial.min()) >= 0.0 and float(r.adversarial.max()) <= 1.0
    assert r.meta["seed"] == seed and r.meta["norm"] == norm


def test_pgd_deterministic_and_global_rng_untouched():
    model = _MODELS[3]
    x = torch.rand(9, 6, generator=torch.Generator().manual_seed(1))
    state = torch.get_rng_state()
    a = pgd(model, x, eps=0.2, seed=7, norm="l2")
    b = pgd(model, x, eps=0.2, seed=7, norm="l2")
    c = pgd(model, x, eps=0.2, seed=8, norm="l2")
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.adversarial, b.adversarial)
    assert not torch.equal(a.adversarial, c.adversarial)
    d = pgd(model, x, eps=0.2)  # a fresh seed is drawn and recorded; rerunning with it repeats
    assert torch.equal(pgd(model, x, eps=0.2, seed=d.meta["seed"]).adversarial, d.adversarial)
    assert a.meta["step_size"] == pytest.approx(2.5 * 0.2 / 10)


def test_model_left_as_found():
    model = _MODELS[2]
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    before = [p.detach().clone() for p in model.parameters()]
    pgd(model, torch.rand(4, 6), eps=0.1, seed=0)
    fgsm(model, torch.rand(4, 6), eps=0.1)
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    model.eval()


# -- the demo CNN -------------------------------------------------------------------------------
def test_pgd_breaks_digits_cnn(digits):
    model, x, y = digits
    clean = float((model(x).argmax(1) == y).float().mean())
    r = pgd(model, x, eps=0.3, target=y, seed=0)
    acc = float((r.predictions == y).float().mean())
    assert clean > 0.9 and acc < 0.10
    assert bool(r.perturbation_norm["linf"].le(0.3 + 1e-6).all())


def test_fgsm_robustness_curve_monotone(digits):
    model, x, y = digits
    curve = robustness_curve(model, x, y, attack="fgsm", eps_values=[0.0, 0.05, 0.1, 0.2, 0.3])
    assert isinstance(curve, RobustnessCurve) and curve.accuracy[0] > 0.9
    assert all(a >= b for a, b in zip(curve.accuracy, curve.accuracy[1:]))
    assert curve.accuracy[-1] < curve.accuracy[0] - 0.5
    from matplotlib.figure import Figure

    assert isinstance(curve.plot(), Figure)


# -- Captum ---------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_agrees_with_captum(digits):
    from captum.robust import FGSM, PGD

    model, x, y = digits
    ce = nn.CrossEntropyLoss(reduction="none")
    ours = fgsm(model, x, eps=0.1, target=y)
    theirs = FGSM(model, loss_func=ce, lower_bound=0.0, upper_bound=1.0).perturb(x, 0.1, y)
    # Captum zeroes gradient entries with |g| <= 1e-6 (zero_thresh); elsewhere the two agree.
    g = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ce(model(g), y).sum(), g)
    big = grad.abs() > 1e-6
    torch.testing.assert_close(ours.adversarial[big], theirs[big], rtol=0, atol=1e-6)
    # With Captum's threshold switched off the two are the same computation, FGSM and PGD alike;
    # with it on, PGD's trajectories diverge (27% of pixels differ by up to 0.2 at eps=0.1).
    exact = FGSM(model, loss_func=ce, lower_bound=0.0, upper_bound=1.0)
    exact.zero_thresh = 0.0
    torch.testing.assert_close(ours.adversarial, exact.perturb(x, 0.1, y), rtol=0, atol=1e-6)
    for eps, steps in [(0.1, 5), (0.3, 10)]:
        for target, targeted in [(y, False), (torch.full_like(y, 3), True)]:
            mine = pgd(model, x, eps=eps, steps=steps, target=target, targeted=targeted,
                       random_start=False)
            attack = PGD(model, loss_func=ce, lower_bound=0.0, upper_bound=1.0)
            attack.fgsm.zero_thresh = 0.0
            theirs = attack.perturb(x, radius=eps, step_size=2.5 * eps / steps, step_num=steps,
                                    target=target, targeted=targeted)
            torch.testing.assert_close(mine.adversarial, theirs, rtol=0, atol=1e-6)


# -- errors ---------------------------------------------------------------------------------------
def test_errors():
    lin = _linear()
    x = torch.rand(3, 5)
    with pytest.raises(errors.InputError, match="eps must be a finite number >= 0"):
        fgsm(lin, x, eps=-0.1)
    with pytest.raises(errors.InputError, match="eps must be a finite number >= 0"):
        pgd(lin, x, eps=-1)
    with pytest.raises(errors.InputError, match="norm must be one of 'linf', 'l2'"):
        pgd(lin, x, eps=0.1, norm="l1")
    with pytest.raises(errors.TargetError, match="target 5 is out of range .* 2 output"):
        fgsm(lin, x, eps=0.1, target=5)
    with pytest.raises(errors.TargetError, match="targeted attack needs target"):
        pgd(lin, x, eps=0.1, targeted=True)
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(errors.InputError, match="NaN or inf"):
        pgd(lin, bad, eps=0.1)
    with pytest.raises(errors.InputError, match="outside the clamp range"):
        fgsm(lin, x + 2, eps=0.1)
    with pytest.raises(errors.InputError, match="steps must be a positive integer"):
        pgd(lin, x, eps=0.1, steps=0)
    with pytest.raises(errors.UnknownMethodError, match="unknown attack 'jsma2'"):
        robustness_curve(lin, x, [0, 1, 0], attack="jsma2", eps_values=[0.1])
    with pytest.raises(errors.ModelError, match="single output"):
        fgsm(nn.Linear(5, 1), x, eps=0.1)


def test_attack_result_plot_shows_clean_perturbation_adversarial():
    import numpy as np

    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 6 * 6, 3))
    x = torch.rand(3, 1, 8, 8)
    r = fgsm(cnn, x, eps=0.1)
    assert torch.equal(r.inputs, x)
    fig = r.plot(n=2)
    axes = fig.axes
    assert len(axes) == 6  # two rows of clean / perturbation / adversarial
    shown = axes[1].images[0].get_array()
    np.testing.assert_allclose(shown, (r.adversarial[0] - x[0]).sum(0).numpy(), atol=1e-6)
    lo, hi = axes[1].images[0].get_clim()
    assert lo == -hi  # the perturbation map is centred on zero
    tab = fgsm(torch.nn.Linear(4, 2), torch.rand(5, 4), eps=0.2, clamp=None)
    assert len(tab.plot(rows=[0, 3]).axes) == 2


def test_results_are_tables_and_text():
    lin = _linear(4)
    x = torch.rand(5, 5, generator=torch.Generator().manual_seed(3))
    r = fgsm(lin, x, eps=0.3)
    rows = r.table()
    assert [row["row"] for row in rows] == list(range(5))
    assert [row["success"] for row in rows] == r.success.tolist()
    assert [row["adversarial_prediction"] for row in rows] == r.predictions.tolist()
    assert [row["linf"] for row in rows] == pytest.approx(r.perturbation_norm["linf"].tolist())
    text = str(r)
    assert text.startswith("fgsm: success rate") and "adversarial prediction" in text
    assert len(text.splitlines()) == 2 + 1 + 5  # title, header, rule, one line per row
    y = torch.zeros(5, dtype=torch.long)
    curve = robustness_curve(lin, x, y, attack="pgd", eps_values=[0.0, 0.2], steps=2, seed=1,
                             batch_size=2, progress=False)
    assert curve.table() == [{"eps": 0.0, "accuracy": curve.accuracy[0]},
                             {"eps": 0.2, "accuracy": curve.accuracy[1]}]
    assert curve.params == {"steps": 2, "seed": 1} and "robustness to pgd" in str(curve)
    again = robustness_curve(lin, x, y, attack="pgd", eps_values=[0.0, 0.2], steps=2, seed=1)
    assert again.accuracy == curve.accuracy


def test_import_does_not_load_matplotlib():
    import subprocess
    import sys

    code = "import sys, pellucid.probe; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
