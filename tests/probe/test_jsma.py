"""JSMA (pellucid.probe.jsma): a hand-checked pair choice, the L0 budget and success on digits."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pellucid import errors
from pellucid.probe import AttackResult, jsma


@pytest.fixture(scope="module")
def digits():
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn()
    d = load_digits()
    return model, d.x_test[:30], d.y_test[:30]


def _hand_linear() -> nn.Linear:
    # logits z0 = -x0 - 3 x1 + x2 + 5, z1 = x0 + 2 x1 + 3 x2 (target class 1).
    # Pairs: (0,1) alpha 3, beta -4 -> 12; (0,2) beta 0 -> not admissible; (1,2) alpha 5,
    # beta -2 -> 10. So JSMA raises features 0 and 1 to 1: z0 = 1, z1 = 3 -> class 1.
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[-1.0, -3.0, 1.0], [1.0, 2.0, 3.0]]))
        lin.bias.copy_(torch.tensor([5.0, 0.0]))
    return lin


def test_hand_checked_pair_on_linear_model():
    r = jsma(_hand_linear(), torch.zeros(2, 3), target=1, max_fraction=1.0)
    assert isinstance(r, AttackResult)
    torch.testing.assert_close(r.adversarial, torch.tensor([[1.0, 1.0, 0.0]] * 2))
    assert r.success.all() and (r.predictions == 1).all() and (r.original_predictions == 0).all()
    assert r.meta["features_changed"].tolist() == [2, 2]
    assert r.meta["row_iterations"].tolist() == [1, 1]
    torch.testing.assert_close(r.perturbation_norm["l2"], torch.full((2,), 2**0.5))


def test_target_saliency_picks_the_largest_target_gradients():
    # saliency="target" ignores the other classes: the pair with the largest dz1/dx is (1, 2)
    # (alpha 2 + 3 = 5), so features 1 and 2 rise to 1: z0 = -3 + 1 + 5 = 3 < z1 = 5.
    r = jsma(_hand_linear(), torch.zeros(1, 3), target=1, max_fraction=1.0, saliency="target")
    torch.testing.assert_close(r.adversarial, torch.tensor([[0.0, 1.0, 1.0]]))
    assert r.success.all() and r.meta["saliency"] == "target"
    with pytest.raises(errors.InputError, match="saliency"):
        jsma(_hand_linear(), torch.zeros(1, 3), target=1, saliency="logits")


def test_budget_too_small_for_a_pair_changes_nothing():
    # max_fraction = 1/3 of 3 features: one feature, but JSMA moves pairs
    r = jsma(_hand_linear(), torch.zeros(1, 3), target=1, max_fraction=0.34)
    assert r.meta["features_changed"].tolist() == [0]
    assert not r.success.any()


def test_target_already_predicted_is_immediate_success():
    lin = _hand_linear()
    r = jsma(lin, torch.zeros(1, 3), target=0)
    assert r.success.all() and r.meta["features_changed"].tolist() == [0]
    assert r.meta["backward_rows"] == 0


def test_per_row_targets_and_no_clamp():
    lin = _hand_linear()
    r = jsma(lin, torch.zeros(2, 3), target=[0, 1], max_fraction=1.0, clamp=None, theta=0.5)
    assert r.target.tolist() == [0, 1]
    assert r.meta["features_changed"][0] == 0 and r.success[0]
    # without a range each feature is used once: at most the 3 features of row 1 move by 0.5
    assert ((r.adversarial[1] == 0) | (r.adversarial[1] == 0.5)).all()


@pytest.mark.parametrize("max_fraction", [0.1, 0.5])
def test_digits_budget_respected(digits, max_fraction):
    model, x, y = digits
    r = jsma(model, x, target=(y + 1) % 10, max_fraction=max_fraction)
    d = x[0].numel()
    changed = ((r.adversarial - x) != 0).reshape(len(x), -1).sum(dim=1)
    assert (changed <= max_fraction * d).all()
    assert torch.equal(changed, r.meta["features_changed"])
    assert ((r.adversarial >= 0) & (r.adversarial <= 1)).all()
    assert torch.equal(r.success, r.predictions == r.target)


def test_digits_reaches_target_on_most(digits):
    model, x, y = digits
    # Measured on these 30 digits (logit JSMA, theta=1): 0.1 -> 3%, 0.2 -> 50%, 0.3 -> 60%,
    # 0.5 -> 80%. 8x8 digits have few features and many already saturated pixels, so the
    # increasing attack needs a larger fraction than on 28x28 MNIST.
    r = jsma(model, x, target=(y + 1) % 10, max_fraction=0.5)
    print(f"JSMA success rate on 30 digits at max_fraction=0.5: {r.success_rate:.3f}")
    assert r.success_rate >= 0.7
    assert (r.meta["features_changed"] <= 32).all()


def test_model_left_as_found(digits):
    model, x, y = digits
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    jsma(model, x[:4], target=(y[:4] + 1) % 10, max_fraction=0.2)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    model.eval()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"target": 2}, errors.TargetError, "out of range"),
        ({"target": [0, 5]}, errors.TargetError, "out of range"),
        ({"target": [0]}, errors.TargetError, "entries"),
        ({"target": None}, errors.TargetError, "jsma needs target="),
        ({"target": 1, "max_fraction": 0}, errors.InputError, r"\(0, 1\]"),
        ({"target": 1, "max_fraction": 1.5}, errors.InputError, r"\(0, 1\]"),
        ({"target": 1, "theta": 0}, errors.InputError, "nonzero"),
        ({"target": 1, "theta": float("nan")}, errors.InputError, "theta"),
    ],
)
def test_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        jsma(_hand_linear(), torch.zeros(2, 3), **kwargs)


def test_inputs_outside_clamp():
    with pytest.raises(errors.InputError, match="clamp"):
        jsma(_hand_linear(), torch.full((1, 3), 2.0), target=1)


def test_digits_both_maps_beat_increasing_only():
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn()
    d = load_digits()
    x, y = d.x_test[:100], d.y_test[:100]
    t = (y + 1) % 10
    # Measured on these 100 digits (theta=1): increase 0.1 -> 6%, 0.2 -> 45%, 0.5 -> 81%;
    # both 0.1 -> 11%, 0.2 -> 53%, 0.5 -> 98%. Increasing-only rows mostly stop on the budget.
    inc = jsma(model, x, target=t, max_fraction=0.2)
    both = jsma(model, x, target=t, max_fraction=0.2, variant="both")
    assert both.meta["variant"] == "both" and inc.meta["variant"] == "increase"
    assert both.success_rate >= inc.success_rate + 0.05
    assert both.success_rate >= 0.5
    changed = ((both.adversarial - x) != 0).reshape(len(x), -1).sum(dim=1)
    assert (changed <= 12).all() and torch.equal(changed, both.meta["features_changed"])
    assert ((both.adversarial >= 0) & (both.adversarial <= 1)).all()
    with pytest.raises(errors.InputError, match="variant"):
        jsma(model, x[:1], target=t[:1], variant="up")


def test_digits_target_saliency_reaches_most_digits_on_a_small_budget():
    """The simplified map (target gradient only) beats the paper's pair map on 8x8 digits.

    Measured on the first 100 test digits, target (label + 1) % 10, at max_fraction 0.1 / 0.2 /
    0.5: pairs+increase 6% / 45% / 81%, pairs+both 11% / 53% / 98%, target+increase 25% / 66% /
    96%, target+both 43% / 94% / 100%. ART 1.20's SaliencyMapMethod, which uses this simplified
    map, gives 25% / 66% / 96% when only its rows within the budget are counted: ART checks the
    budget after moving a pair, so it changes up to 8 features at gamma=0.1 (6.4 allowed).
    """
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn()
    d = load_digits()
    x, y = d.x_test[:100], d.y_test[:100]
    t = (y + 1) % 10
    r = jsma(model, x, target=t, max_fraction=0.2, saliency="target", variant="both")
    assert r.success_rate >= 0.85
    assert (r.meta["features_changed"] <= 12).all()
    assert torch.equal(r.success, r.predictions == t)


def test_old_keyword_names_warn_and_agree():
    lin, x = _hand_linear(), torch.zeros(2, 3)
    new = jsma(lin, x, target=1, max_fraction=1.0)
    with pytest.warns(DeprecationWarning, match=r"jsma\(target_class=...\) is deprecated.*target="):
        old = jsma(lin, x, target_class=1, max_fraction=1.0)
    torch.testing.assert_close(old.adversarial, new.adversarial, rtol=0, atol=0)
    with pytest.warns(DeprecationWarning, match=r"max_features=.*max_fraction="):
        old = jsma(lin, x, target=1, max_features=1.0)
    torch.testing.assert_close(old.adversarial, new.adversarial, rtol=0, atol=0)
    assert old.meta["max_fraction"] == 1.0
    with pytest.raises(errors.InputError, match="both target= and its old name target_class="):
        jsma(lin, x, target=1, target_class=1)
