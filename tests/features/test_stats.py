"""pellucid.features.activation_stats: dead, saturated and firing units over a data set."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pellucid import features as F


def _dead_net(units: int = 20, dead: int = 7) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, units), nn.ReLU(), nn.Linear(units, 8), nn.Tanh())
    with torch.no_grad():  # inputs are in [0, 1): w ≤ 0 and b < 0 make a unit never positive
        net[0].weight[:dead] = -net[0].weight[:dead].abs()
        net[0].bias[:dead] = -1.0
        net[0].bias[dead:] = 0.5  # and the others alive (positive at x = 0)
        net[2].weight.mul_(20.0)  # drive the tanh into saturation
    return net


def test_activation_stats_counts_dead_units_exactly(model_state):
    net = _dead_net()
    data = torch.rand(1000, 5, generator=torch.Generator().manual_seed(0))
    before = model_state.snapshot(net)
    loader = [(data[i:i + 128], None) for i in range(0, 1000, 128)]  # streamed batches
    stats = F.activation_stats(net, loader)
    model_state.assert_same(before, model_state.snapshot(net))
    assert list(stats.layers) == ["1", "3"]
    relu = stats["1"]
    assert relu.dead_fraction == 7 / 20 and relu.dead[:7].all() and not relu.dead[7:].any()
    assert relu.values == 1000 * 20
    with torch.no_grad():
        z = net[0](data).double()
    assert relu.mean == pytest.approx(float(z.mean()), abs=1e-9)
    assert relu.std == pytest.approx(float(z.std(unbiased=False)), rel=1e-6)
    tanh = stats["3"]
    with torch.no_grad():
        z3 = net[:3](data)
    assert tanh.saturated_fraction == pytest.approx(float((z3.abs() > 2).float().mean()))
    assert tanh.saturated_fraction > 0.3
    assert "dead" in str(stats) and "35.0%" in str(stats)
    table = stats.table()
    assert [row["layer"] for row in table] == ["1", "3"] and list(table[0]) == list(stats.COLUMNS)
    assert table[0]["dead"] == 7 / 20 and table[1]["saturated"] == tanh.saturated_fraction
    assert str(stats).splitlines()[0] == "activation statistics over 1000 rows"
    # the same as one tensor in chunks
    again = F.activation_stats(net, data, batch_size=100)
    assert again["1"].dead_fraction == relu.dead_fraction
    assert again["1"].mean == pytest.approx(relu.mean, abs=1e-9)


def test_activation_stats_on_a_conv_net_counts_channels(cnn, images):
    stats = F.activation_stats(cnn, images)
    assert stats["features.1"].units == 6 and stats["features.3"].kind == "tanh"
    assert stats["features.1"].saturated_fraction != stats["features.1"].saturated_fraction  # NaN
