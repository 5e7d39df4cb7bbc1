"""Tests for pellucid.simplify.prune and fine_tune: exact counts, known answers, the demo CNN."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pellucid.errors import InputError, ModelError
from pellucid.simplify import PruneReport, Simplified, fine_tune, prune
from pellucid.zoo import TinyResNet


def _mlp(seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net


def _weights(net: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def test_global_magnitude_removes_exactly_the_smallest_weights(model_state):
    net = _mlp()
    before = model_state.snapshot(net)
    pruned, report = prune(net, amount=0.3)
    model_state.assert_same(before, model_state.snapshot(net))
    all_w = torch.cat([w.detach().flatten() for w in _weights(net)])
    k = round(0.3 * all_w.numel())
    smallest = set(torch.argsort(all_w.abs())[:k].tolist())
    zeroed = set(torch.nonzero(torch.cat([w.detach().flatten() for w in _weights(pruned)]) == 0)
                 .flatten().tolist())
    assert zeroed == smallest and report.removed == k
    for layer, w, w0 in zip(report.layers, _weights(pruned), _weights(net)):
        assert layer["removed"] == int((w == 0).sum())
        assert layer["sparsity"] == pytest.approx(float((w == 0).float().mean()))
        kept = w != 0
        assert torch.equal(w[kept], w0[kept])  # surviving weights unchanged
    for b, b0 in zip([m.bias for m in pruned if isinstance(m, nn.Linear)],
                     [m.bias for m in net if isinstance(m, nn.Linear)]):
        assert torch.equal(b, b0)  # biases are not pruned
    assert report.nonzero_before - report.nonzero_after == k
    assert set(pruned.state_dict()) == set(net.state_dict())  # no weight_orig / weight_mask


def test_layer_scope_prunes_each_layer_alike():
    net = _mlp(1)
    pruned, report = prune(net, amount=0.5, scope="layer")
    for w, w0 in zip(_weights(pruned), _weights(net)):
        k = round(0.5 * w0.numel())
        assert int((w == 0).sum()) == k
        assert w0.abs()[w == 0].max() <= w0.abs()[w != 0].min()


def test_gradient_criterion_is_weight_times_loss_gradient():
    net = _mlp(2)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    ref = copy.deepcopy(net)
    loss = nn.functional.cross_entropy(ref(x), y)
    grads = torch.autograd.grad(loss, _weights(ref))
    scores = torch.cat([(w.detach() * gr).abs().flatten() for w, gr in zip(_weights(ref), grads)])
    pruned, report = prune(net, amount=0.25, criterion="gradient", data=(x, y))
    zeroed = torch.cat([w.detach().flatten() for w in _weights(pruned)]) == 0
    k = round(0.25 * scores.numel())
    assert int(zeroed.sum()) == k
    assert scores[zeroed].max() <= scores[~zeroed].min() + 1e-6
    assert report.accuracy_before is not None and report.agreement is not None


def test_structured_pruning_equals_zeroing_the_removed_units():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 10), nn.ReLU(), nn.Linear(10, 3))
    x = torch.rand(5, 1, 8, 8)
    pruned, report = prune(net, amount=0.25, structured=True, scope="layer")
    assert pruned[0].out_channels == 6 - round(1.5) and pruned[2].out_channels == 6
    assert pruned[6].out_features == 10 - round(2.5) and pruned[6].in_features == 6 * 16
    # Zeroing the removed units' weights and biases in the original gives the same outputs:
    # ReLU(0) = 0, so a removed unit contributes nothing downstream.
    ref = copy.deepcopy(net)
    with torch.no_grad():
        for i in (0, 2, 6):
            norms = net[i].weight.abs().flatten(1).sum(1)
            cut = torch.argsort(norms, stable=True)[:norms.numel() - pruned[i].weight.shape[0]]
            ref[i].weight[cut] = 0
            ref[i].bias[cut] = 0
    torch.testing.assert_close(pruned(x), ref(x))
    assert report.parameters_after < report.parameters_before
    assert report.removed == report.parameters_before - report.parameters_after


def test_structured_pruning_cuts_batch_norm_alike():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 2)).eval()
    net[1].running_mean.normal_()
    pruned, _ = prune(net, amount=0.5, structured=True, scope="layer")
    assert pruned[0].out_channels == 4 and pruned[1].num_features == 4
    assert pruned[1].running_mean.shape == (4,)
    assert pruned[3].in_channels == 4 and pruned[5].in_features == 2 * 16
    assert pruned(torch.rand(3, 1, 8, 8)).shape == (3, 2)


@pytest.mark.slow
def test_demo_cnn_half_pruned_and_fine_tuned_keeps_accuracy(model_state, digits):
    model, info, d = digits
    before = model_state.snapshot(model)
    pruned, report = prune(model, amount=0.5, data=(d.x_test, d.y_test))
    assert report.sparsity == pytest.approx(0.5, abs=1e-4)
    assert report.accuracy_before == pytest.approx(info["test_accuracy"])
    tuned, train_report = fine_tune(pruned, (d.x_train, d.y_train), epochs=2)
    model_state.assert_same(before, model_state.snapshot(model))
    with torch.no_grad():
        acc = float((tuned(d.x_test).argmax(1) == d.y_test).float().mean())
    assert acc >= info["test_accuracy"] - 0.02, (acc, info["test_accuracy"])
    for name, mask in report.masks.items():  # pruned weights stayed exactly zero
        assert torch.all(dict(tuned.named_parameters())[name][mask == 0] == 0)
    zeros = sum(int((w == 0).sum()) for w in _weights(tuned))
    assert zeros >= report.removed
    assert len(train_report.losses) == 2


def test_demo_cnn_structured_quarter_of_channels(model_state, digits):
    model, info, d = digits
    before = model_state.snapshot(model)
    for criterion in ("magnitude", "gradient", "attribution"):
        pruned, report = prune(model, amount=0.25, structured=True, criterion=criterion,
                               data=(d.x_test, d.y_test))
        units = sum(l["units_before"] - l["units_after"] for l in report.layers if l["units_before"])
        assert units == round(0.25 * (16 + 32 + 64))
        assert report.parameters_after < report.parameters_before
        out = pruned(d.x_test)  # runs on the same inputs
        assert out.shape == (len(d.x_test), 10)
        assert report.accuracy_after is not None
    model_state.assert_same(before, model_state.snapshot(model))


def test_attribution_criterion_on_the_demo_cnn(digits):
    model, _, d = digits
    pruned, report = prune(model, amount=0.5, criterion="attribution", data=d.x_test[:100])
    assert report.sparsity == pytest.approx(0.5, abs=1e-4)
    assert report.accuracy_before is None and report.agreement > 0.9


def test_structured_refuses_residual_connections():
    net = TinyResNet(seed=0).eval()
    with pytest.raises(ModelError, match="residual|add"):
        prune(net, amount=0.25, structured=True, layers=["block1.conv2"])
    # inner convolutions of the blocks can be pruned; the network still runs
    pruned, report = prune(net, amount=0.25, structured=True)
    assert {l["name"] for l in report.layers} >= {"block1.conv1", "block1.conv2", "block2.conv1"}
    assert pruned(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_model_left_as_found_even_when_training_and_frozen(model_state):
    net = _mlp()
    net.train()
    net[0].weight.requires_grad_(False)
    before = model_state.snapshot(net)
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(20, 6, generator=g), torch.randint(0, 3, (20,), generator=g))
    for criterion in ("magnitude", "gradient", "attribution"):
        for structured in (False, True):
            prune(net, amount=0.4, criterion=criterion, structured=structured, data=data)
    model_state.assert_same(before, model_state.snapshot(net))


@pytest.mark.parametrize("amount", [-0.1, 1.0, 1.5, True, "0.5", None])
def test_amount_outside_unit_interval_is_refused(amount):
    with pytest.raises(InputError, match="amount"):
        prune(_mlp(), amount=amount)


def test_clear_errors():
    net = _mlp()
    with pytest.raises(InputError, match="shape"):
        prune(net, amount=0.5, data=torch.rand(4, 7))
    with pytest.raises(InputError, match="needs data"):
        prune(net, amount=0.5, criterion="gradient")
    with pytest.raises(InputError, match="criterion"):
        prune(net, amount=0.5, criterion="random")
    with pytest.raises(InputError, match="scope"):
        prune(net, amount=0.5, scope="model")
    with pytest.raises(ModelError, match="output"):
        prune(net, amount=0.5, structured=True, layers=["4"])
    with pytest.raises(InputError, match="labelled"):
        fine_tune(net, torch.rand(4, 6))


def test_report_prints_and_plots():
    result = prune(_mlp(), amount=0.5, data=(torch.rand(10, 6), torch.zeros(10, dtype=torch.long)))
    assert isinstance(result, Simplified) and isinstance(result.model, nn.Sequential)
    report = result.report
    assert isinstance(report, PruneReport)
    text = str(report)
    assert "sparsity" in text and "accuracy" in text and "0" in text
    table = report.table()  # plain data, one row per layer (what pellucid.report shows)
    assert [row["name"] for row in table] == ["0", "2", "4"]
    assert table[0]["shape_before"] == (12, 6) and table[0]["sparsity"] == report.layers[0]["sparsity"]
    assert "12x6" in text
    assert report.params == {"amount": 0.5, "criterion": "magnitude", "structured": False, "scope": "global",
                             "layers": None, "batch_size": None}
    fig = report.plot()
    assert len(fig.axes) == 1


def test_fine_tune_old_batch_size_keyword_warns_and_means_the_minibatch():
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g))
    pruned, _ = prune(_mlp(), amount=0.5)
    new = fine_tune(pruned, data, epochs=2, train_batch_size=8)
    with pytest.warns(DeprecationWarning, match="fine_tune\\(batch_size=...\\) is deprecated"):
        old = fine_tune(pruned, data, epochs=2, batch_size=8)
    assert old.report.losses == new.report.losses
    for a, b in zip(old.model.parameters(), new.model.parameters()):
        assert torch.equal(a, b)
