"""The one hook contract (pellucid._hooks): layer keys, call sites of reused modules, in-place
safety, and the model left as found."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid._hooks import capture, find_layer, hooks, replacing
from pellucid.errors import LayerError


class Block(nn.Module):
    """One in-place ReLU module called twice, as in torchvision's BasicBlock."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv1(x))
        out = self.relu(self.conv2(out) + x)
        return self.head(out)


def test_call_sites_address_each_call_of_a_reused_module():
    net, x = Block(), torch.randn(2, 2, 4, 4)
    with capture(net, ["relu@0", "relu@1", "relu"]) as (run, seen):
        run.reset()
        net(x)
        run.check_once("relu@1")
        with pytest.raises(LayerError, match=r"ran 2 time\(s\).*'relu@0', 'relu@1'"):
            run.check_once("relu")
    assert len(seen["relu@0"]) == len(seen["relu@1"]) == 1 and len(seen["relu"]) == 2
    torch.testing.assert_close(seen["relu@0"][0], torch.relu(net.conv1(x)))
    first = torch.relu(net.conv1(x))
    torch.testing.assert_close(seen["relu@1"][0], torch.relu(net.conv2(first) + x))
    with capture(net, ["relu@2"]) as (run, _):
        run.reset()
        net(x)
        with pytest.raises(LayerError, match="does not exist.*@0 to @1"):
            run.check_once("relu@2")


def test_capture_is_not_overwritten_by_an_inplace_op_and_keeps_its_gradient():
    net, x = Block(), torch.randn(2, 2, 4, 4)
    with capture(net, ["conv1"]) as (run, seen), torch.enable_grad():
        out = net(x.requires_grad_(True))
        (a,) = seen["conv1"]
        (g,) = torch.autograd.grad(out[:, 0].sum(), a)
    torch.testing.assert_close(a, net.conv1(x))  # the pre-ReLU values, negatives included
    assert bool((a < 0).any())
    # the gradient at conv1's output, by hand: through relu (mask a > 0) into conv2 and the head
    leaf = net.conv1(x).detach().requires_grad_(True)
    h = torch.relu(leaf)
    ref = net.head(torch.relu(net.conv2(h) + x))
    (g_ref,) = torch.autograd.grad(ref[:, 0].sum(), leaf)
    torch.testing.assert_close(g, g_ref)


def test_replacing_leaves_the_callers_tensor_and_a_leaf_alone():
    net, x = Block(), torch.randn(2, 2, 4, 4)
    given = torch.randn(2, 2, 4, 4)
    kept = given.clone()
    with replacing(net, "conv1", lambda _a: given) as (run, originals):
        net(x)
    assert torch.equal(given, kept) and len(originals) == 1
    leaf = torch.randn(2, 2, 4, 4, requires_grad=True)
    with replacing(net, "conv1", lambda _a: leaf), torch.enable_grad():
        (g,) = torch.autograd.grad(net(x)[:, 1].sum(), leaf)
    assert g.shape == leaf.shape
    with pytest.raises(LayerError, match="shaped"):
        with replacing(net, "conv1", lambda a: a[:1]):
            net(x)


def test_pre_hooks_with_kwargs_and_hooks_removed_even_on_error():
    net, x = Block(), torch.randn(2, 2, 4, 4)
    with hooks(net, {"relu@1": lambda site, args: (torch.zeros_like(args[0]),)}, pre=True) as run:
        run.reset()
        out = net(x)
    torch.testing.assert_close(out, net.head(torch.zeros(2, 2, 4, 4)))
    seen = []
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    q = torch.randn(1, 3, 4)
    with hooks(mha, {mha: lambda site, args, kwargs: seen.append(sorted(kwargs))},
               pre=True, with_kwargs=True):
        mha(q, q, q, need_weights=False)
    assert seen == [["need_weights"]]
    before = [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules()]

    def boom(site, output):
        raise LayerError("stop")

    with pytest.raises(LayerError, match="stop"):
        with hooks(net, {"conv2": boom}):
            net(x)
    assert before == [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules()]


def test_unknown_layers_are_named_and_nothing_is_registered():
    net = Block()
    with pytest.raises(LayerError, match="unknown layer 'conv9'.*conv1, conv2, relu"):
        with hooks(net, {"conv1": lambda s, o: None, "conv9": lambda s, o: None}):
            pass
    assert all(not m._forward_hooks for m in net.modules())
    with pytest.raises(LayerError, match="'layer@k'"):
        find_layer(net, "relu@x")
    with pytest.raises(LayerError, match="not a torch module"):
        find_layer(pellucid.wrap(lambda t: t.sum(1)), "relu")


def test_grad_cam_and_layer_ig_through_an_inplace_relu_equal_the_out_of_place_model():
    """Grad-CAM read the post-ReLU values and layer IG failed on a leaf modified in place when the
    layer's output met an in-place ReLU; both now equal the same model built out of place."""
    net, x = Block(), torch.randn(3, 2, 4, 4)
    twin = Block()
    twin.relu = nn.ReLU(inplace=False)
    twin.load_state_dict(net.state_dict())
    for method, kwargs in ((pellucid.grad_cam, {}), (pellucid.integrated_gradients, {"steps": 8})):
        a = method(net, x, layer="conv1", target=1, **kwargs)
        b = method(twin, x, layer="conv1", target=1, **kwargs)
        torch.testing.assert_close(a.values, b.values)
