"""The context manager that leaves the user's model as found."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid._state import explaining, preserved


def test_swapped_parameters_modules_and_hooks_are_put_back(cnn, model_state):
    conv, weight = cnn.features[0], cnn.features[0].weight
    cnn.train()
    before = model_state.snapshot(cnn)
    with pytest.raises(RuntimeError, match="midway"):
        with preserved(cnn):
            cnn.eval()
            conv.weight = nn.Parameter(torch.zeros_like(weight))
            cnn.features[1] = nn.Identity()
            cnn.register_forward_hook(lambda *a: None)
            nn.modules.module.register_module_forward_hook(lambda *a: None)
            conv.register_full_backward_hook(lambda *a: None)
            weight.requires_grad_(False)
            raise RuntimeError("midway")
    assert conv.weight is weight and isinstance(cnn.features[1], nn.ReLU)
    assert not nn.modules.module._global_forward_hooks
    model_state.assert_same(before, model_state.snapshot(cnn))


def test_explaining_freezes_and_evaluates_inside(cnn):
    cnn.train()
    with explaining(cnn):
        assert not cnn.training and not any(p.requires_grad for p in cnn.parameters())
    assert cnn.training and all(p.requires_grad for p in cnn.parameters())


def test_parameter_grads_are_not_touched(cnn, images):
    cnn.zero_grad(set_to_none=True)
    pellucid.integrated_gradients(cnn, images, steps=4)
    pellucid.grad_cam(cnn, images, layer="features.2")
    assert all(p.grad is None for p in cnn.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_methods_run_on_the_models_cuda_device(cnn, images):
    cnn = cnn.cuda()
    for name, kw in [("saliency", {}), ("integrated_gradients", {"steps": 8}),
                     ("smoothgrad", {"samples": 4, "seed": 0}),
                     ("grad_cam", {"layer": "features.2"})]:
        gpu = pellucid.explain(cnn, images, method=name, **kw)
        assert gpu.values.is_cuda and gpu.target.is_cuda
        cpu = pellucid.explain(cnn.cpu(), images, method=name, **kw)
        cnn.cuda()
        if name != "smoothgrad":  # CUDA and CPU generators draw different noise
            torch.testing.assert_close(gpu.values.cpu(), cpu.values, atol=1e-4, rtol=1e-3)


def test_attributes_set_during_a_method_are_undone():
    """A library flag set lazily during a call (transformers marks its output-capturing hooks
    installed) would outlive the hooks that preserved() removes; added attributes go, plain
    values come back."""
    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    net[0].flag = False
    with preserved(net):
        net._hooks_installed_mark = True
        net[0].flag = True
        net[0].name = "changed"
    assert not hasattr(net, "_hooks_installed_mark")
    assert net[0].flag is False and not hasattr(net[0], "name")
