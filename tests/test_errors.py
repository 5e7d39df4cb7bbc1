"""Bad input raises a pellucid error whose message says what was wrong."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid.errors import (
    BaselineError,
    InputError,
    LayerError,
    NotDifferentiableError,
    PellucidError,
    TargetError,
    UnknownMethodError,
)

ALL = ["saliency", "gradient_x_input", "integrated_gradients", "smoothgrad", "grad_cam",
       "grad_cam_pp"]


def run(name, model, x, **kw):
    if "cam" in name:
        kw.setdefault("layer", "features.2")
    if name in ("integrated_gradients", "smoothgrad"):
        kw.setdefault("steps" if name == "integrated_gradients" else "samples", 4)
    return pellucid.explain(model, x, method=name, **kw)


@pytest.mark.parametrize("name", ALL)
def test_nan_and_inf_inputs(cnn, images, name):
    x = images.clone()
    x[2, 0, 3, 3] = float("nan")
    x[4, 0, 0, 0] = float("inf")
    with pytest.raises(InputError, match=r"NaN or inf values in 2 row\(s\) \(rows 2, 4\)"):
        run(name, cnn, x)


@pytest.mark.parametrize("name", ALL)
def test_wrong_rank(cnn, images, name):
    with pytest.raises(InputError, match=r"the model failed on inputs with rows shaped \(8, 8\).*"
                                         r"leading batch dimension"):
        run(name, cnn, images[0])


@pytest.mark.parametrize("name", ALL)
def test_target_out_of_range(cnn, images, name):
    with pytest.raises(TargetError, match=r"target 4 is out of range for a model with 4 "
                                          r"output\(s\) \(valid: 0 to 3\)"):
        run(name, cnn, images, target=4)
    with pytest.raises(TargetError, match=r"target -1 \(row 1\) is out of range"):
        run(name, cnn, images, target=[0, -1, 0, 0, 0, 0])
    with pytest.raises(TargetError, match="target has 2 entries but there are 6 input rows"):
        run(name, cnn, images, target=[0, 1])
    with pytest.raises(TargetError, match="must be an int"):
        run(name, cnn, images, target=1.5)


@pytest.mark.parametrize("name", ["grad_cam", "grad_cam_pp"])
def test_unknown_layer(cnn, images, name):
    with pytest.raises(LayerError, match=r"unknown layer 'features\.9'.*its layers are: "
                                         r"features, features\.0"):
        run(name, cnn, images, layer="features.9")
    with pytest.raises(LayerError, match="is not part of"):
        run(name, cnn, images, layer=nn.Conv2d(1, 1, 1))
    with pytest.raises(LayerError, match="needs a layer whose output has channels and spatial"):
        run(name, cnn, images, layer="classifier.1")


def test_baseline_that_does_not_broadcast(cnn, images):
    with pytest.raises(BaselineError, match=r"a baseline of shape \(3, 8, 8\) does not broadcast "
                                            r"to the inputs' shape \(6, 1, 8, 8\)"):
        pellucid.integrated_gradients(cnn, images, baseline=torch.zeros(3, 8, 8))
    with pytest.raises(BaselineError, match="NaN or inf"):
        pellucid.integrated_gradients(cnn, images, baseline=torch.full((1, 8, 8), float("nan")))


def test_gradient_method_on_non_differentiable_callable(images):
    def argmax_model(x):
        return nn.functional.one_hot(x.reshape(len(x), -1).argmax(1), 64).float()

    with pytest.raises(NotDifferentiableError, match="could not differentiate"):
        pellucid.saliency(argmax_model, images)


def test_black_box_model_names_the_methods_that_work(images):
    m = pellucid.wrap(lambda x: x.sum(1))
    m.differentiable = False
    with pytest.raises(NotDifferentiableError, match=r"saliency needs gradients.*occlusion"):
        pellucid.saliency(m, images)


def test_unknown_method_lists_the_registered_ones(cnn, images):
    with pytest.raises(UnknownMethodError, match="no explanation method named 'shapely'.*saliency"):
        pellucid.explain(cnn, images, method="shapely")


def test_bad_options(cnn, images):
    with pytest.raises(InputError, match="rule .*must be one of .*gausslegendre.*got 'simpson'"):
        pellucid.integrated_gradients(cnn, images, rule="simpson")
    with pytest.raises(InputError, match="steps must be a positive integer"):
        pellucid.integrated_gradients(cnn, images, steps=0)
    with pytest.raises(InputError, match="variant .*must be one of .*got .median."):
        pellucid.smoothgrad(cnn, images, variant="median")
    with pytest.raises(PellucidError, match="deterministic gradient method"):
        pellucid.smoothgrad(cnn, images, base="smoothgrad")
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        pellucid.saliency(cnn, images, batch_size=0)
    with pytest.raises(InputError, match="must be numeric"):
        pellucid.saliency(cnn, [["a", "b"]])
    with pytest.raises(InputError, match=r"shaped \(n, \.\.\.\) with n >= 1"):
        pellucid.saliency(cnn, torch.zeros(0, 1, 8, 8))


@pytest.mark.parametrize("name", ALL)
def test_model_left_as_found_after_success_and_failure(cnn, images, name, model_state):
    cnn.train()
    cnn.features[0].weight.requires_grad_(False)
    handle = cnn.register_forward_hook(lambda *a: None)
    cnn.classifier[1].weight.grad = torch.ones_like(cnn.classifier[1].weight)
    before = model_state.snapshot(cnn)
    run(name, cnn, images)
    model_state.assert_same(before, model_state.snapshot(cnn))
    with pytest.raises(TargetError):
        run(name, cnn, images, target=99)
    model_state.assert_same(before, model_state.snapshot(cnn))
    bad = images.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError):
        run(name, cnn, bad)
    model_state.assert_same(before, model_state.snapshot(cnn))
    handle.remove()
    assert len(cnn._forward_hooks) == 0


def test_state_restored_when_the_model_itself_raises(cnn, images, model_state):
    """A forward hook that raises midway leaves no pellucid hooks and the flags as they were."""
    calls = []

    def boom(module, inputs, output):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("boom")

    cnn.train()
    h = cnn.features[2].register_forward_hook(boom)
    before = model_state.snapshot(cnn)
    with pytest.raises(InputError, match="boom"):
        pellucid.grad_cam(cnn, images, layer="features.2", batch_size=2)
    model_state.assert_same(before, model_state.snapshot(cnn))
    h.remove()
