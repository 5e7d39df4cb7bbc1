"""DeepLIFT, LRP and guided backprop on torchvision-style ResNets: in-place ReLUs, one ReLU
module called at several places per block (issue 14, item 6).

Before the fix, an in-place ReLU overwrote its input before DeepLIFT's rescale rule read it
(Δa became Δy, every multiplier 1): on ResNet-18 |delta| was 0.075 against |f(x) − f(x')| = 0.043,
silently. Now in-place operations run out of place in the traced graph (relevance/_inplace.py).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

import pellucid
from pellucid.errors import UnsupportedLayerError
from pellucid.zoo.resnet import resnet18, resnet50

captum_attr = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def trained_bn(net: nn.Module, seed: int = 1) -> nn.Module:
    """BatchNorm statistics as after training, so each BN is a non-trivial affine map (with a
    bias: f(x') ≠ 0 and the ReLUs' multipliers are not their gradients)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return net.eval()


def captum_copy(net: nn.Module) -> fx.GraphModule:
    """The same function for Captum: out of place (build with ``inplace=False``), one ReLU module
    per call site (Captum's DeepLift raises on a reused module), and a copy between the stem's
    ReLU and MaxPool (in Captum 0.9 a nonlinear module right after another one gets a stale
    output gradient, captum#1104; see test_deeplift.py)."""
    gm = fx.symbolic_trace(net)
    for i, node in enumerate(list(gm.graph.nodes)):
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.ReLU):
            assert not gm.get_submodule(node.target).inplace
            gm.add_submodule(f"relu_site_{i}", nn.ReLU())
            node.target = f"relu_site_{i}"
            if any(u.op == "call_module" and isinstance(gm.get_submodule(u.target), nn.MaxPool2d)
                   for u in node.users):
                with gm.graph.inserting_after(node):
                    copy = gm.graph.call_method("clone", (node,))
                node.replace_all_uses_with(copy, delete_user_cb=lambda u, c=copy: u is not c)
    gm.recompile()
    return gm


def relu_calls(net: nn.Module) -> dict[str, int]:
    """How often each ReLU module runs in one forward pass."""
    counts: dict[str, int] = {}
    gm = fx.symbolic_trace(net)
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.ReLU):
            counts[node.target] = counts.get(node.target, 0) + 1
    return counts


@pytest.fixture(scope="module")
def data():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    base = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return x, base, torch.tensor([0, 3])


@pytest.fixture(scope="module")
def r18():
    """ResNet-18 as torchvision writes it (in place, one ReLU per block) and its out-of-place twin."""
    return trained_bn(resnet18(seed=0)), trained_bn(resnet18(seed=0, inplace=False))


def test_the_zoo_resnet_is_torchvision_style(r18):
    net, twin = r18
    calls = relu_calls(net)
    assert calls["relu"] == 1 and calls["layer1.0.relu"] == 2 and len(calls) == 9
    assert all(m.inplace for m in net.modules() if isinstance(m, nn.ReLU))
    assert not any(m.inplace for m in twin.modules() if isinstance(m, nn.ReLU))
    with torch.device("meta"):  # shapes only
        assert sum(p.numel() for p in resnet18(1000).parameters()) == 11_689_512  # torchvision's
        assert sum(p.numel() for p in resnet50(1000).parameters()) == 25_557_032
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x.clone()), twin(x.clone()), atol=0, rtol=0)


def test_deeplift_sums_to_delta_on_inplace_resnet18(r18, data, model_state):
    net, twin = r18
    x, base, t = data
    kept = x.clone(), base.clone()
    before = model_state.snapshot(net)
    e = pellucid.deeplift(net, x, target=t, baseline=base)
    model_state.assert_same(before, model_state.snapshot(net))
    torch.testing.assert_close((x, base), kept, atol=0, rtol=0)  # inputs not overwritten either
    with torch.no_grad():
        change = (twin(x) - twin(base))[torch.arange(2), t]
    assert change.abs().min() > 1e-3  # a change the old defect could not hide in
    torch.testing.assert_close(e.outputs - e.baseline_outputs, change, atol=1e-6, rtol=1e-5)
    assert (e.delta.abs() <= 1e-4 * change.abs()).all(), (e.delta, change)
    # The in-place, reused-ReLU network gives the out-of-place one's map.
    torch.testing.assert_close(e.values, pellucid.deeplift(twin, x, target=t, baseline=base).values,
                               atol=1e-7, rtol=0)


def test_deeplift_on_inplace_resnet18_matches_captum(data):
    """Captum's DeepLift on the out-of-place, one-ReLU-per-call copy. Both nets get a 2x2 stem
    max pool: torchvision's 3x3/2 pool has overlapping windows, where Captum's max rule is wrong
    (next test)."""
    x, base, t = data
    net = trained_bn(resnet18(seed=0))
    twin = trained_bn(resnet18(seed=0, inplace=False))
    net.maxpool = twin.maxpool = nn.MaxPool2d(2)
    ours = pellucid.deeplift(net, x, target=t, baseline=base)
    theirs, delta = captum_attr.DeepLift(captum_copy(twin)).attribute(
        x, baselines=base, target=t, return_convergence_delta=True)
    assert theirs.abs().max() > 1e-3
    torch.testing.assert_close(ours.values, theirs, atol=1e-5, rtol=0)
    change = (ours.outputs - ours.baseline_outputs).abs()
    assert (ours.delta.abs() <= 1e-4 * change).all() and (delta.abs() <= 1e-4 * change).all()


def test_captum_max_rule_breaks_summation_on_overlapping_windows():
    """Peer defect: Captum 0.9 routes max pooling's multipliers back with ``max_unpool``, which
    keeps one of two windows that share a maximum. By hand: f = Σ maxpool(x) over the windows
    (x₁, x₂) and (x₂, x₃) of x = (0, 1, 0), x' = 0: both windows' maximum is x₂, each with
    Δy = 1 = Δx₂, so x₂ gets 2 = Δf. Captum gives it 1 (delta 1)."""
    net = nn.Sequential(nn.Identity(), nn.MaxPool2d((1, 2), stride=1), nn.Flatten(),
                        nn.Linear(2, 1, bias=False)).eval()
    with torch.no_grad():
        net[3].weight.fill_(1.0)
    x = torch.tensor([0.0, 1.0, 0.0]).view(1, 1, 1, 3)
    ours = pellucid.deeplift(net, x, target=0)
    torch.testing.assert_close(ours.values.flatten(), torch.tensor([0.0, 2.0, 0.0]))
    torch.testing.assert_close(ours.delta, torch.zeros(1))
    theirs, delta = captum_attr.DeepLift(net).attribute(
        x, baselines=torch.zeros_like(x), target=0, return_convergence_delta=True)
    torch.testing.assert_close(theirs.detach().flatten(), torch.tensor([0.0, 1.0, 0.0]))
    assert delta.abs().item() == pytest.approx(1.0)


def test_lrp_and_guided_backprop_on_inplace_resnet18(data):
    """LRP conserves f(x) on the bias-free network (fresh BatchNorm, no fc bias) and gives the
    same map in place and out of place; guided backprop too, and it equals Captum's."""
    x, _, t = data
    net, twin = resnet18(seed=0).eval(), resnet18(seed=0, inplace=False).eval()
    for m in (net, twin):
        with torch.no_grad():
            m.fc.bias.zero_()
    ours, other = pellucid.lrp(net, x, target=t), pellucid.lrp(twin, x, target=t)
    assert ours.outputs.abs().min() > 1e-3
    assert (ours.delta.abs() <= 1e-3 * ours.outputs.abs()).all(), (ours.delta, ours.outputs)
    torch.testing.assert_close(ours.values, other.values, atol=0, rtol=0)
    exact = pellucid.lrp(net, x, target=t, composite="epsilon", epsilon=0)
    assert (exact.delta.abs() <= 1e-4 * exact.outputs.abs()).all()
    gb = pellucid.guided_backprop(net, x, target=t).values
    torch.testing.assert_close(gb, pellucid.guided_backprop(twin, x, target=t).values, atol=0, rtol=0)
    torch.testing.assert_close(gb, captum_attr.GuidedBackprop(twin).attribute(x, target=t),
                               atol=1e-6, rtol=0)


def test_deeplift_on_inplace_resnet50(data):
    """Bottlenecks: one ReLU module called three times per block (in float64: 53 layers of
    float32 rounding leave |delta| within 2x of the bound)."""
    x, base, t = (v.double() if v.is_floating_point() else v for v in data)
    net = trained_bn(resnet50(seed=0)).double()
    twin = trained_bn(resnet50(seed=0, inplace=False)).double()
    assert relu_calls(net)["layer1.0.relu"] == 3
    e = pellucid.deeplift(net, x, target=t, baseline=base)
    change = (e.outputs - e.baseline_outputs).abs()
    assert change.min() > 1e-3 and (e.delta.abs() <= 1e-4 * change).all(), (e.delta, change)
    torch.testing.assert_close(e.values, pellucid.deeplift(twin, x, target=t, baseline=base).values,
                               atol=1e-6, rtol=0)
    gb = pellucid.guided_backprop(net, x, target=t).values
    torch.testing.assert_close(gb, pellucid.guided_backprop(twin, x, target=t).values, atol=0, rtol=0)


class InplaceForms(nn.Module):
    """Every way of writing an in-place activation, and a tensor read after it was overwritten
    (``h.relu_()`` without assignment: later reads of ``h`` see the ReLU's output)."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3)
        self.act = nn.LeakyReLU(0.1, inplace=inplace)
        self.fc = nn.Linear(4 * 4 * 4, 3)
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(x)
        if self.inplace:
            h.relu_()
            h = self.act(F.relu(self.c2(h), inplace=True))
            g = self.c3(torch.relu_(h))
            torch.tanh_(g)
        else:
            h = h.relu()
            h = self.act(F.relu(self.c2(h)))
            g = torch.tanh(self.c3(torch.relu(h)))
        return self.fc(torch.flatten(g, 1))


def test_every_inplace_form_gives_the_out_of_place_answer(images):
    x, base = images, torch.full_like(images, 0.3)
    a, b = InplaceForms(True).eval(), InplaceForms(False).eval()
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), atol=0, rtol=0)
    for method in ("deeplift", "guided_backprop", "lrp"):
        options = {"baseline": base} if method == "deeplift" else {}
        ea = pellucid.explain(a, x, method=method, target=1, **options)
        eb = pellucid.explain(b, x, method=method, target=1, **options)
        torch.testing.assert_close(ea.values, eb.values, atol=1e-7, rtol=0)
        torch.testing.assert_close(ea.outputs, eb.outputs, atol=1e-7, rtol=0)
    assert pellucid.deeplift(a, x, target=1, baseline=base).delta.abs().max() < 1e-5


class ViewThenInplace(nn.Module):
    """``v`` is a view of ``h``; ``h.relu_()`` changes ``v`` too, which is then read."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(2 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        v = h.flatten(1)
        h.relu_()
        return self.fc(v)


class BufferInplace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 3)
        self.register_buffer("total", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.total.add_(x.sum())
        return self.fc(x.flatten(1)) + self.total


@pytest.mark.parametrize("method", ["deeplift", "lrp", "guided_backprop"])
def test_inplace_through_shared_memory_is_refused(images, method):
    with pytest.raises(UnsupportedLayerError, match=r"\.relu_\(\).*\.flatten\(\).*shares memory"):
        pellucid.explain(ViewThenInplace().eval(), images, method=method, target=0)
    net = BufferInplace().eval()
    with pytest.raises(UnsupportedLayerError, match="overwrites a parameter or buffer.*'total'"):
        pellucid.explain(net, images, method=method, target=0)
    assert net.total.item() == 0.0


def test_a_reused_module_is_named_by_its_call_site():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.norm = nn.Linear(4, 4), nn.LayerNorm(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(self.fc(self.norm(x)))

    with pytest.raises(UnsupportedLayerError, match=r"'norm@0' \(LayerNorm\); 'norm@1' \(LayerNorm\)"):
        pellucid.deeplift(Twice().eval(), torch.randn(3, 4))


class AliasedUpdate(nn.Module):
    """torch.fx traces ``y += 1`` as ``y + 1``: the traced graph returns ``2h`` where the model
    returns ``2(h + 1)`` (``y`` is another name for ``h``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x.flatten(1))
        y = h
        y += 1.0
        return h * 2


@pytest.mark.parametrize("method", ["deeplift", "lrp", "guided_backprop"])
def test_a_graph_that_computes_another_function_is_refused(images, method):
    with pytest.raises(UnsupportedLayerError, match=r"other outputs than the model.*a = a \+ b"):
        pellucid.explain(AliasedUpdate().eval(), images, method=method, target=0)
