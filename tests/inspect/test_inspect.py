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


def _by_name(s):
    return {r.name: r for r in s.layers}


def test_structure_of_the_resnet_lists_shapes_and_the_parameter_total(model_state):
    model = TinyResNet(seed=0).train()
    before = model_state.snapshot(model)
    s = structure(model, torch.zeros(2, 3, 32, 32))
    model_state.assert_same(before, model_state.snapshot(model))  # BN statistics untouched, training flag kept
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
    from pellucid.reporting import table_html

    assert "&lt;b&gt;&amp;" in table_html(s.table())


def test_structure_errors():
    with pytest.raises(errors.ModelError, match="nn.Module"):
        structure(lambda x: x, torch.zeros(1))
    with pytest.raises(errors.InputError, match="inputs must be a tensor"):
        structure(nn.Linear(2, 2), [[0.0, 0.0]])
    with pytest.raises(errors.ModelError, match="failed on inputs"):
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
                               [a.mean(), a.std(ddof=1), a.min(), a.max(), np.abs(a).mean(),
                                np.linalg.norm(a)])
    assert t.zero_fraction == 0.5 and w["2.weight"].zero_fraction == 0.0
    expected, _ = np.histogram(a, bins=t.edges)
    np.testing.assert_array_equal(t.counts, expected)
    assert t.counts.sum() == 200
    with pytest.raises(KeyError, match="no parameter"):
        w["nope"]
    with pytest.raises(errors.InputError, match="bins"):
        weights(net, bins=0)


def test_weights_plot_is_drawn():
    from pellucid.plot.inspect import figure_pixels

    pixels = figure_pixels(weights(TinyResNet(seed=0)).plot())
    assert pixels.std() > 10  # not blank


def _event_tags(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"images": 0, "histograms": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_tensorboard_writes_histograms_graph_and_pictures(tmp_path, model_state):
    pytest.importorskip("tensorboard")
    import pellucid

    model = TinyResNet(seed=0)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    expl = pellucid.saliency(model, x, target=0)
    before = model_state.snapshot(model)
    tensorboard(model, tmp_path, explanations=[expl], inputs=x[:1], step=3)
    model_state.assert_same(before, model_state.snapshot(model))
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
    first, last = (monitor.history[k].weights["classifier.3.weight"] for k in (0, 2))
    assert first.mean != last.mean
    tags = _event_tags(tmp_path).Tags()
    assert "explanations/saliency/0" in tags["images"] and "weights/features.0.weight" in tags["histograms"]
    assert [e.step for e in _event_tags(tmp_path).Images("explanations/saliency/0")] == [0, 2, 4]
    from pellucid.plot.inspect import figure_pixels

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


class _Reused(nn.Module):
    """One Linear and one ReLU, each called twice in the forward pass."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.act = nn.ReLU()
        self.b = nn.Linear(3, 2)

    def forward(self, x):
        return self.b(self.act(self.a(self.act(self.a(x)))))


@pytest.mark.parametrize("trace", [True, False])
def test_a_reused_module_gets_one_row_per_call_site(trace):
    s = structure(_Reused(), torch.ones(2, 3), trace=trace)
    assert s.traced == trace
    assert [r.name for r in s.layers] == ["a@0", "act@0", "a@1", "act@1", "b"]
    assert [r.params for r in s.layers] == [12, 0, 0, 0, 8]  # the shared Linear counted once
    assert [r.inputs[0] for r in s.layers[1:]] == ["a@0", "act@0", "a@1", "act@1"]
    assert sum(r.params for r in s.layers) == s.total_params == 20


def test_structure_and_weights_print_tables_and_return_rows():
    net = nn.Sequential(nn.Linear(300, 40), nn.ReLU(), nn.Linear(40, 2))
    s = structure(net, torch.zeros(1, 300))
    rows = s.table()
    assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
    assert rows[0] == {"name": "0", "kind": "Linear", "output_shape": (1, 40), "params": 12_040,
                       "trainable": 12_040}
    text = str(s).splitlines()
    assert text[0] == "Sequential on input (1, 300)"
    assert text[1].split() == ["layer", "kind", "output", "shape", "params", "trainable"]
    assert text[3].split() == ["0", "Linear", "1x40", "12,040", "12,040"]
    assert text[-1] == "total parameters 12,122, trainable 12,122"
    w = weights(net)
    assert [r["name"] for r in w.table()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    lines = str(w).splitlines()
    assert lines[0] == "Sequential" and lines[1].split()[:3] == ["parameter", "shape", "count"]
    assert lines[3].split()[:3] == ["0.weight", "40x300", "12,000"] and lines[3].endswith("0.0%")


def test_old_keyword_names_warn_and_give_the_same_result(tmp_path):
    net = TinyResNet(seed=0)
    x = torch.zeros(1, 3, 32, 32)
    with pytest.warns(DeprecationWarning, match=r"structure\(example_inputs=...\) is deprecated"):
        old = structure(net, example_inputs=x)
    assert old == structure(net, x)
    with pytest.warns(DeprecationWarning, match="probe_inputs"):
        mon = Monitor(nn.Linear(2, 2), probe_inputs=torch.ones(3, 2))
    torch.testing.assert_close(mon.inputs, torch.ones(3, 2))
    with pytest.warns(DeprecationWarning, match="Monitor.inputs"):
        assert mon.probe_inputs is mon.inputs
    with pytest.raises(errors.InputError, match="both inputs and its old name"), \
            pytest.warns(DeprecationWarning):
        Monitor(nn.Linear(2, 2), torch.ones(3, 2), probe_inputs=torch.ones(3, 2))
    pytest.importorskip("tensorboard")
    lin = nn.Linear(3, 2)
    with pytest.warns(DeprecationWarning, match=r"tensorboard\(example_inputs=...\)"):
        tensorboard(lin, tmp_path / "old", example_inputs=torch.zeros(1, 3))
    tensorboard(lin, tmp_path / "new", inputs=torch.zeros(1, 3))
    assert _event_tags(tmp_path / "old").Tags()["graph"] and _event_tags(tmp_path / "new").Tags()["graph"]


def test_monitor_explanations_and_table():
    net = nn.Linear(4, 2)
    mon = Monitor(net, torch.ones(3, 4), methods=("saliency", "gradient_x_input"), every=2)
    for i in range(5):
        mon.step(i)
    by_step = mon.explanations("gradient_x_input")
    assert list(by_step) == [0, 2, 4] and all(e.method == "gradient_x_input" for e in by_step.values())
    assert list(mon.explanations()) == [0, 2, 4]  # the first method by default
    rows = mon.table()
    assert [r["step"] for r in rows] == [0, 2, 4]
    t = int(net(torch.ones(1, 4)).argmax())  # saliency of a linear model: |W[t]| on every row
    assert rows[0]["saliency mean |value|"] == pytest.approx(float(net.weight[t].detach().abs().mean()))


def test_importing_inspect_leaves_matplotlib_alone():
    import subprocess
    import sys

    code = "import sys, pellucid.inspect; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
