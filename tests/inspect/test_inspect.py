"""pellucid.inspect: structure (shapes, parameter totals, the traced graph), weights, TensorBoard, Monitor."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pellucid import errors
from pellucid.inspect import Monitor, structure, tensorboard, weights
from pellucid.zoo import TinyResNet

from conftest import assert_same_state, snapshot


def _by_name(s):
    return {r.name: r for r in s.layers}


def test_structure_of_the_resnet_lists_shapes_and_the_parameter_total():
    model = TinyResNet(seed=0).train()
    before = snapshot(model)
    s = structure(model, torch.zeros(2, 3, 32, 32))
    assert_same_state(before, snapshot(model))  # BN statistics untouched, training flag kept
    assert s.traced
    assert s.total_params == sum(p.numel() for p in model.parameters()) == 19_994
    assert sum(r.params for r in s.layers) == s.total_params
    rows = _by_name(s)
    # conv3x3 stem keeps 32x32; block2 halves it with stride 2; pool/flatten/fc shrink to logits
    assert rows["stem.0"].output_shape == (2, 16, 32, 32)
    assert rows["stem.0"].params == 3 * 16 * 9
    assert rows["block1.conv2"].output_shape == (2, 16, 32, 32)
    assert rows["block2.conv1"].output_shape == (2, 32, 16, 16)
    assert rows["block2.downsample.0"].output_shape == (2, 32, 16, 16)
    assert rows["pool"].output_shape == (2, 32, 1, 1)
    assert rows["flatten"].output_shape == (2, 32)
    assert rows["fc"].output_shape == (2, 10) and rows["fc"].params == 330
    # the residual additions are rows of their own, fed by the block's branch and its shortcut
    adds = [r for r in s.layers if r.kind == "add"]
    assert len(adds) == 2
    assert set(adds[0].inputs) == {"block1.bn2", "stem.2"}
    assert set(adds[1].inputs) == {"block2.bn2", "block2.downsample.1"}


def test_hooks_give_the_same_module_rows_as_tracing():
    model = TinyResNet(seed=0)
    traced = structure(model, torch.zeros(1, 3, 32, 32))
    hooked = structure(model, torch.zeros(1, 3, 32, 32), trace=False)
    assert not hooked.traced
    assert [(r.name, r.output_shape, r.params) for r in hooked.layers] == [
        (r.name, r.output_shape, r.params) for r in traced.layers if r.module
    ]
    assert hooked.total_params == traced.total_params


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 6)
        self.scale = nn.Parameter(torch.ones(6))
        self.unused = nn.Linear(6, 3)

    def forward(self, x):
        h = F.relu(self.a(x))
        return (h + self.b(h)) * self.scale


class _Branching(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = self.a  # shared: counted once

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
            return self.a(x)
        return self.b(x)


def test_functional_calls_parameters_and_unused_modules_are_all_counted():
    model = _Functional()
    s = structure(model, torch.zeros(3, 4))
    kinds = [r.kind for r in s.layers]
    assert "relu" in kinds and "add" in kinds and "mul" in kinds and "parameter" in kinds
    assert _by_name(s)["unused"].kind == "Linear (not called)"
    assert sum(r.params for r in s.layers) == s.total_params == sum(p.numel() for p in model.parameters())


def test_untraceable_model_falls_back_to_hooks_and_counts_shared_parameters_once():
    model = _Branching()
    s = structure(model, torch.ones(2, 4))
    assert not s.traced
    assert s.total_params == 20 and sum(r.params for r in s.layers) == 20
    assert "hooks" in str(s)


def test_structure_svg_is_well_formed_and_escapes_names():
    model = nn.Sequential()
    model.add_module("<b>&", nn.Linear(2, 2))
    s = structure(model, torch.zeros(1, 2))
    svg = s.to_svg()
    root = ET.fromstring(svg)  # raises on malformed XML (an unescaped '<' or '&')
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any("<b>&" in (t or "") for t in texts)
    from pellucid.report import table_html

    assert "&lt;b&gt;&amp;" in table_html(s.table())


def test_structure_errors():
    with pytest.raises(errors.ModelError, match="nn.Module"):
        structure(lambda x: x, torch.zeros(1))
    with pytest.raises(errors.InputError, match="example_inputs"):
        structure(nn.Linear(2, 2), [[0.0, 0.0]])
    with pytest.raises(errors.ModelError, match="failed on example_inputs"):
        structure(nn.Linear(2, 2), torch.zeros(1, 3), trace=False)


def test_weights_statistics_match_numpy_and_count_pruned_zeros():
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 2))
    with torch.no_grad():
        net[0].weight[:, :5] = 0.0  # half the first weight matrix pruned
    w = weights(net, bins=16)
    assert [t.name for t in w.tensors] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    t = w["0.weight"]
    a = net[0].weight.detach().double().numpy().ravel()
    assert t.numel == 200 and t.shape == (20, 10)
    np.testing.assert_allclose([t.mean, t.std, t.min, t.max, t.abs_mean, t.norm],
                               [a.mean(), a.std(ddof=1), a.min(), a.max(), np.abs(a).mean(), np.linalg.norm(a)])
    assert t.zero_fraction == 0.5 and w["2.weight"].zero_fraction == 0.0
    expected, _ = np.histogram(a, bins=t.edges)
    np.testing.assert_array_equal(t.counts, expected)
    assert t.counts.sum() == 200
    with pytest.raises(KeyError, match="no parameter"):
        w["nope"]
    with pytest.raises(errors.InputError, match="bins"):
        weights(net, bins=0)


def test_weights_plot_is_drawn():
    from pellucid.inspect.tensorboard import figure_pixels

    pixels = figure_pixels(weights(TinyResNet(seed=0)).plot())
    assert pixels.std() > 10  # not blank


def _event_tags(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"images": 0, "histograms": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_tensorboard_writes_histograms_graph_and_pictures(tmp_path):
    pytest.importorskip("tensorboard")
    import pellucid

    model = TinyResNet(seed=0)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    expl = pellucid.saliency(model, x, target=0)
    before = snapshot(model)
    tensorboard(model, tmp_path, explanations=[expl], example_inputs=x[:1], step=3)
    assert_same_state(before, snapshot(model))
    acc = _event_tags(tmp_path)
    tags = acc.Tags()
    assert {f"weights/{n}" for n, _ in model.named_parameters()} <= set(tags["histograms"])
    assert set(tags["images"]) == {"explanations/saliency/0", "explanations/saliency/1"}
    assert acc.Images("explanations/saliency/0")[0].step == 3
    assert tags["graph"]


def test_monitor_records_changing_maps_while_the_digits_cnn_trains(tmp_path):
    pytest.importorskip("tensorboard")
    from pellucid.zoo import DigitsCNN, load_digits

    d = load_digits()
    torch.manual_seed(0)  # the test's own model; pellucid itself never seeds the global RNG
    model = DigitsCNN().train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    probe = d.x_test[:4]
    monitor = Monitor(model, probe, methods=("saliency", "integrated_gradients"), every=2,
                      target=d.y_test[:4], logdir=tmp_path, steps=8)
    g = torch.Generator().manual_seed(0)
    for epoch in range(5):
        recorded = monitor.step(epoch)
        assert recorded == (epoch % 2 == 0)
        assert model.training  # the monitor leaves the training loop's mode alone
        for idx in torch.randperm(len(d.x_train), generator=g).split(128):
            opt.zero_grad()
            F.cross_entropy(model(d.x_train[idx]), d.y_train[idx]).backward()
            opt.step()
    monitor.close()
    assert [s.step for s in monitor.history] == [0, 2, 4]
    assert monitor.history[0].explanations["integrated_gradients"].params["steps"] == 8
    maps = monitor.maps("saliency")
    assert maps.shape == (3, 4, 1, 8, 8)
    # training moved the maps: each recorded step differs from the one before by a real amount
    change = (maps[1:] - maps[:-1]).flatten(1).norm(dim=1) / maps[:-1].flatten(1).norm(dim=1)
    assert (change > 0.05).all(), change
    assert monitor.history[0].weights["classifier.3.weight"].mean != monitor.history[2].weights["classifier.3.weight"].mean
    tags = _event_tags(tmp_path).Tags()
    assert "explanations/saliency/0" in tags["images"] and "weights/features.0.weight" in tags["histograms"]
    assert [e.step for e in _event_tags(tmp_path).Images("explanations/saliency/0")] == [0, 2, 4]
    from pellucid.inspect.tensorboard import figure_pixels

    assert figure_pixels(monitor.plot()).std() > 10
    with pytest.raises(errors.InputError, match="not monitored"):
        monitor.maps("lrp")


def test_monitor_errors():
    with pytest.raises(errors.UnknownMethodError):
        Monitor(nn.Linear(2, 2), torch.zeros(1, 2), methods=("nope",))
    with pytest.raises(errors.InputError, match="every"):
        Monitor(nn.Linear(2, 2), torch.zeros(1, 2), every=0)
    with pytest.raises(errors.InputError, match="nothing recorded"):
        Monitor(nn.Linear(2, 2), torch.zeros(1, 2)).plot()
