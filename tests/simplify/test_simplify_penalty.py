"""Tests for pellucid.simplify.sparsity_penalty and train."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pellucid.errors import InputError
from pellucid.simplify import prune, sparsity_penalty, train
from pellucid.zoo import planted_tabular


def test_penalty_value_and_gradient_by_hand():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.0, 3.0]]))
        net[2].weight.copy_(torch.tensor([[-1.0, 0.5]]))
    value = sparsity_penalty(net, l1=0.1, l2=0.01)
    # weights only: sum |w| = 7.5, sum w^2 = 15.25
    assert value.item() == pytest.approx(0.1 * 7.5 + 0.01 * 15.25)
    value.backward()
    expected = 0.1 * torch.sign(net[0].weight) + 0.02 * net[0].weight
    torch.testing.assert_close(net[0].weight.grad, expected)
    assert net[0].bias.grad is None
    with_bias = sparsity_penalty(net, l1=1.0, biases=True)
    assert with_bias.item() == pytest.approx(7.5 + (net[0].bias.abs().sum() + net[2].bias.abs().sum()).item())
    assert float(sparsity_penalty(net)) == 0.0


def test_l1_training_makes_weights_sparse(model_state):
    data = planted_tabular(600, seed=3)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    before = model_state.snapshot(net)
    plain, r0 = train(net, (data.x, data.y), epochs=15)
    sparse, r1 = train(net, (data.x, data.y), epochs=15, l1=3e-3)
    model_state.assert_same(before, model_state.snapshot(net))
    small = lambda m: float((m[0].weight.abs() < 1e-2).float().mean())  # noqa: E731
    assert small(sparse) > small(plain) + 0.2
    assert r1.accuracy_after > 0.9 and r0.accuracy_after > 0.9
    # the L1 model loses less when half its weights are cut
    _, p0 = prune(plain, amount=0.5, data=(data.x, data.y))
    _, p1 = prune(sparse, amount=0.5, data=(data.x, data.y))
    assert p1.agreement >= p0.agreement
    assert "epochs" in str(r1) and len(r1.plot().axes) == 1


def test_clear_errors():
    with pytest.raises(InputError, match="l1"):
        sparsity_penalty(nn.Linear(2, 2), l1=-1.0)
    with pytest.raises(InputError, match="epochs"):
        train(nn.Linear(2, 2), (torch.rand(4, 2), torch.zeros(4, dtype=torch.long)), epochs=0)


def _labelled(n: int = 64):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g)


def test_train_returns_a_named_tuple_and_shows_a_table():
    from pellucid.simplify import Simplified

    result = train(nn.Linear(4, 2), _labelled(), epochs=3, progress=True)
    assert isinstance(result, Simplified) and isinstance(result.model, nn.Linear)
    model, report = result  # still unpacks
    assert model is result.model and report is result.report
    assert report.table() == [{"epoch": i + 1, "loss": loss} for i, loss in enumerate(report.losses)]
    assert report.params == {"l1": 0.0, "l2": 0.0, "epochs": 3, "lr": 1e-2, "train_batch_size": 64, "seed": 0}


def test_old_batch_size_keyword_is_the_training_minibatch_and_warns():
    data, net = _labelled(), nn.Linear(4, 2)
    new = train(net, data, epochs=2, train_batch_size=16).report
    with pytest.warns(DeprecationWarning, match="train_batch_size"):
        old = train(net, data, epochs=2, batch_size=16).report
    assert old.losses == new.losses and old.params["train_batch_size"] == 16
    with pytest.raises(InputError, match="train_batch_size"):
        train(nn.Linear(4, 2), data, batch_size=16, train_batch_size=16)
    with pytest.raises(InputError, match="train_batch_size"):
        train(nn.Linear(4, 2), data, train_batch_size=0)
