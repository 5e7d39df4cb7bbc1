"""pellucid.features.maximize: activation maximization and its objectives."""
from __future__ import annotations

import pytest
import torch

from pellucid import features as F
from pellucid.errors import InputError, LayerError


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn()
    return model, load_digits()


@pytest.mark.slow
def test_maximize_class_logit_beats_every_real_digit(digits, model_state):
    model, data = digits
    before = model_state.snapshot(model)
    with torch.no_grad():
        logits = model(data.x_test)
    for cls in (3, 8):
        vis = F.maximize(model, F.class_logit(cls), shape=(1, 8, 8), seed=0, progress=False)
        best_real = float(logits[data.y_test == cls, cls].max())
        assert float(vis.values[0]) > best_real
        assert vis.images.min() >= 0 and vis.images.max() <= 1
        assert vis.curve.shape == (256, 1) and vis.curve[-20:].mean() > vis.curve[:20].mean()
    model_state.assert_same(before, model_state.snapshot(model))
    again = F.maximize(model, F.class_logit(8), shape=(1, 8, 8), seed=0, progress=False)
    assert torch.equal(again.images, vis.images)


def test_maximize_objectives_compose_and_pixels_work(digits):
    model, _ = digits
    obj = F.channel("features.2", 3) - 0.5 * F.channel("features.2", 5)
    assert obj.layers == ("features.2",) and "-" in obj.description
    vis = F.maximize(model, obj, shape=(1, 8, 8), steps=32, param="pixel", tv=0.1, l2=0.1,
                     images=2, seed=1, transforms={"jitter": 0.05, "rotate": 10})
    assert vis.images.shape == (2, 1, 8, 8) and vis.curve.shape == (32, 2)
    direction = F.maximize(model, F.direction("features.2", torch.ones(32)) + F.neuron("features.0", 2),
                           shape=(1, 8, 8), steps=8, seed=0)
    assert torch.isfinite(direction.values).all()
    assert F.maximize(model, "features.2:4", shape=(1, 8, 8), steps=4, seed=0).objective \
        == "channel('features.2', 4)"


def test_maximize_errors_are_clear(digits):
    model, _ = digits
    with pytest.raises(LayerError, match="unknown layer 'conv2'"):
        F.maximize(model, F.channel("conv2", 3), shape=(1, 8, 8), steps=2)
    with pytest.raises(LayerError, match="has 32 channels.*channel 40 does not exist"):
        F.maximize(model, F.channel("features.2", 40), shape=(1, 8, 8), steps=2)
    with pytest.raises(InputError, match="shape"):
        F.maximize(model, F.class_logit(1), steps=2)
    with pytest.raises(InputError, match="param"):
        F.maximize(model, F.class_logit(1), shape=(1, 8, 8), param="wavelet", steps=2)


def test_maximize_old_batch_keyword_warns_and_gives_the_same_images(cnn):
    new = F.maximize(cnn, F.class_logit(1), shape=(1, 8, 8), steps=3, images=2, seed=0)
    with pytest.warns(DeprecationWarning, match=r"maximize\(batch=...\) is deprecated.*images="):
        old = F.maximize(cnn, F.class_logit(1), shape=(1, 8, 8), steps=3, batch=2, seed=0)
    assert torch.equal(old.images, new.images) and torch.equal(old.curve, new.curve)
    assert old.params == new.params and new.params["images"] == 2
    with pytest.raises(InputError, match="both images= and its old name batch="):
        F.maximize(cnn, F.class_logit(1), shape=(1, 8, 8), steps=3, images=2, batch=2)


@pytest.mark.parametrize("option, value, message", [
    ("images", 0, "images must be a positive integer"),
    ("steps", 2.5, "steps must be a positive integer"),
    ("lr", 0.0, "lr must be a positive finite number"),
    ("tv", -1.0, "tv must be a finite number >= 0"),
    ("shape", (1, 8), "shape must be"),
])
def test_maximize_options_are_checked_before_the_model_runs(cnn, option, value, message):
    kwargs = {"shape": (1, 8, 8), "steps": 2, option: value}
    with pytest.raises(InputError, match=message):
        F.maximize(cnn, F.class_logit(1), **kwargs)


def test_class_logit_old_index_keyword_warns_and_gives_the_same_objective(cnn, images):
    with pytest.warns(DeprecationWarning, match=r"class_logit\(index=...\) is deprecated.*target="):
        old = F.class_logit(index=2)
    new = F.class_logit(target=2)
    with torch.no_grad():
        out = cnn.eval()(images)
    assert old.description == new.description == "class_logit(2)"
    torch.testing.assert_close(old({}, out), new({}, out))
    torch.testing.assert_close(new({}, out), out[:, 2])
