"""torch.export programs in wrap(): an ExportedProgram, its .module() and a .pt2 file are
differentiable models that give the same values as the module they were exported from."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid.adapters import exported_model
from pellucid.errors import InputError, LayerError, ModelError

BATCH = torch.export.Dim("batch")


def _rows(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _export(net: nn.Module, example: torch.Tensor, dynamic: bool = True) -> torch.export.ExportedProgram:
    shapes = ({0: BATCH},) if dynamic else None
    return torch.export.export(net, (example,), dynamic_shapes=shapes)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """An MLP, its program (dynamic batch) and the program saved as a .pt2 file."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).eval()
    program = _export(net, _rows(2, 6))
    path = tmp_path_factory.mktemp("export") / "mlp.pt2"
    torch.export.save(program, str(path))
    return net, program, path


def _source(mlp, kind: str):
    _, program, path = mlp
    return {"program": program, "module": program.module(), "path": path, "str": str(path)}[kind]


@pytest.mark.parametrize("kind", ["program", "module", "path", "str"])
def test_ig_and_kernel_shap_equal_those_on_the_module(mlp, kind):
    net, _, _ = mlp
    source = _source(mlp, kind)
    m = pellucid.wrap(source)
    assert m.differentiable and not m.eval_mode  # never eval(): the exported module refuses it
    x, background = _rows(5, 6, seed=1), _rows(20, 6, seed=2)
    ours = pellucid.integrated_gradients(source, x, target=2, steps=32)
    ref = pellucid.integrated_gradients(net, x, target=2, steps=32)
    torch.testing.assert_close(ours.values, ref.values, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.delta, ref.delta, atol=1e-6, rtol=0)
    ours = pellucid.kernel_shap(source, x, background=background, target=1, seed=0)
    ref = pellucid.kernel_shap(net, x, background=background, target=1, seed=0)
    torch.testing.assert_close(ours.values, ref.values, atol=1e-6, rtol=0)
    assert ours.delta.abs().max() < 1e-5


def test_gradients_flow_to_the_inputs_and_the_module_is_left_as_found(mlp, model_state):
    """The exported module keeps its weights as nn.Parameters (requires_grad=True): explaining
    freezes them, takes the input gradient, and restores them without eval() or .grad."""
    net, program, _ = mlp
    module = program.module()
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in module.parameters())
    m = pellucid.wrap(module)
    x = _rows(4, 6, seed=3)
    before = model_state.snapshot(module)
    with m.explaining():
        assert not any(p.requires_grad for p in module.parameters())
        grad, out, target = m.target_gradient(x, 0)
    model_state.assert_same(before, model_state.snapshot(module))
    assert module.training  # untouched: its mode lives in its graph
    xr = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(net(xr)[:, 0].sum(), xr)
    torch.testing.assert_close(grad, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out, net(x)[:, 0].detach())
    pellucid.saliency(module, x, target=1)
    model_state.assert_same(before, model_state.snapshot(module))
    assert all(p.grad is None for p in module.parameters())


def test_dynamic_batch_cnn_runs_in_chunks_of_every_size():
    net = CNN().eval()
    program = _export(net, _rows(2, 1, 8, 8))
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    sizes: list[int] = []
    module = program.module()
    handle = module.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    try:
        ours = pellucid.saliency(module, x, target=1, batch_size=2)  # chunks of 2, 2 and 1 rows
    finally:
        handle.remove()
    assert sorted(set(sizes)) == [1, 2]
    torch.testing.assert_close(ours.values, pellucid.saliency(net, x, target=1).values)
    for method, kw in [("integrated_gradients", {"steps": 8, "batch_size": 3}),
                       ("occlusion", {"window": (1, 4, 4), "batch_size": 3})]:
        ours = pellucid.explain(program, x, method, target=2, **kw)
        ref = pellucid.explain(net, x, method, target=2, **kw)
        torch.testing.assert_close(ours.values, ref.values, atol=1e-6, rtol=0)


def test_a_static_batch_size_is_refused_with_the_fix():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 3)).eval()
    program = _export(net, _rows(4, 6), dynamic=False)
    for call in (lambda: pellucid.saliency(program, _rows(3, 6)),
                 lambda: pellucid.integrated_gradients(program, _rows(4, 6), steps=8)):  # 4 x 8 path points
        with pytest.raises(ModelError, match=r"static batch size of 4.*torch\.export\.Dim\('batch'\)"):
            call()
    # the one batch size it was exported for still works
    torch.testing.assert_close(pellucid.wrap(program).outputs(_rows(4, 6), batch_size=4), net(_rows(4, 6)))


def test_wrong_row_shape_is_an_input_error(mlp):
    _, program, _ = mlp
    with pytest.raises(InputError, match=r"rows shaped \(7,\).*exported"):
        pellucid.saliency(program, _rows(3, 7))


@pytest.mark.parametrize("layer, ops", [(nn.Dropout(0.3), "dropout"), (nn.BatchNorm1d(16), "batch_norm")])
def test_a_program_exported_in_training_mode_is_refused(layer, ops):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), layer, nn.Linear(16, 3)).train()
    program = _export(net, _rows(4, 6))
    with pytest.raises(ModelError, match=rf"training mode \(it runs {ops}.*model\.eval\(\) before torch\.export"):
        pellucid.wrap(program)
    with pytest.raises(ModelError, match="training mode"):
        exported_model(program)
    assert pellucid.wrap(program, eval_mode=False).differentiable  # asked for: explained as exported
    # exported in eval mode, the same network is accepted, and a dropout of rate 0 is the identity
    pellucid.wrap(_export(net.eval(), _rows(4, 6)))
    pellucid.wrap(_export(nn.Sequential(nn.Linear(6, 3), nn.Dropout(0.0)).train(), _rows(4, 6)))


def test_exported_model_and_file_errors(mlp, tmp_path):
    net, program, path = mlp
    m = exported_model(path, batch_size=3)
    assert m.batch_size == 3 and m.name == "mlp.pt2"
    x = _rows(7, 6)
    torch.testing.assert_close(m.outputs(x), net(x).detach())
    # the contents decide, not the suffix: a program saved as .pt is read as a program
    torch.export.save(program, str(tmp_path / "program.pt"))
    assert pellucid.wrap(tmp_path / "program.pt").name == "program.pt"
    (tmp_path / "junk.pt2").write_text("not a model")
    torch.save(net.state_dict(), tmp_path / "weights.pt2")
    for bad in ("junk.pt2", "weights.pt2"):
        with pytest.raises(ModelError, match="not a program saved with torch.export.save"):
            pellucid.wrap(tmp_path / bad)
    with pytest.raises(ModelError, match="no model file"):
        pellucid.wrap(tmp_path / "missing.pt2")
    with pytest.raises(ModelError, match="ExportedProgram or its .module()"):
        exported_model(net)


@pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)`:FutureWarning")
def test_layers_through_unflatten():
    """The flat module has no layers to hook; torch.export.unflatten gives them back."""
    net = CNN().eval()
    program = _export(net, _rows(2, 1, 8, 8))
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    with pytest.raises(LayerError):
        pellucid.grad_cam(program, x, layer="features.0")
    ours = pellucid.grad_cam(torch.export.unflatten(program), x, layer="features.0", target=1)
    torch.testing.assert_close(ours.values, pellucid.grad_cam(net, x, layer="features.0", target=1).values)


def test_guided_backprop_and_layer_methods_refuse_the_flat_exported_graph():
    """Guided backprop used to return the plain gradient on an exported graph (its ReLUs are aten
    ops), and a layer method said the layer 'did not run'; both now say what to pass instead."""
    from pellucid.errors import LayerError, UnsupportedLayerError

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    x = torch.rand(5, 4)
    program = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    with pytest.raises(UnsupportedLayerError, match="aten.*unflatten"):
        pellucid.guided_backprop(program, x)
    with pytest.raises(LayerError, match="inlined into one graph.*unflatten"):
        pellucid.integrated_gradients(program, x, layer="1", steps=4)
