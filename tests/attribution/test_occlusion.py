"""Occlusion: known answers on a linear model, agreement with Captum, groups, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pellucid
from pellucid.errors import BaselineError, InputError


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def _images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def test_single_element_window_on_linear_model_is_w_times_x_minus_baseline():
    torch.manual_seed(0)
    lin = nn.Linear(5, 2).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    expl = pellucid.occlusion(lin, x, window=1, baseline=0.5, target=1)
    torch.testing.assert_close(expl.values, lin.weight.detach()[1] * (x - 0.5), atol=1e-12, rtol=0)
    assert expl.method == "occlusion" and expl.baseline_outputs is None


def test_patch_windows_average_the_drops_of_every_window_covering_an_element():
    w = torch.arange(1.0, 7.0)  # a plain callable runs in torch's default dtype (float32)
    x = torch.ones(1, 6)
    expl = pellucid.occlusion(lambda a: a @ w, x, window=2, stride=2)
    # windows {0,1}, {2,3}, {4,5}: drops 3, 7, 11, each element gets its window's drop
    torch.testing.assert_close(expl.values[0].double(), torch.tensor([3., 3., 7., 7., 11., 11.],
                                                                     dtype=torch.float64))
    expl = pellucid.occlusion(lambda a: a @ w, x, window=2, stride=1)
    # windows at 0..4 with drops 3,5,7,9,11; element 1 is in windows 0 and 1: (3 + 5) / 2
    assert float(expl.values[0, 1]) == pytest.approx(4.0)
    assert float(expl.values[0, 0]) == pytest.approx(3.0)
    assert expl.meta["windows"] == 5


@pytest.mark.parametrize("window, stride", [((3, 4, 4), (3, 2, 2)), ((1, 3, 3), 1),
                                            ((3, 3, 3), (3, 2, 3)), ((3, 8, 8), 1)])
def test_matches_captum_occlusion(window, stride):
    captum_attr = pytest.importorskip("captum.attr")
    net, x = _net(), _images()
    ours = pellucid.occlusion(net, x, window=window, stride=stride, target=2)
    theirs = captum_attr.Occlusion(net).attribute(x, sliding_window_shapes=window, strides=stride,
                                                  target=2)
    torch.testing.assert_close(ours.values, theirs, atol=1e-5, rtol=0)


def test_matches_captum_with_one_baseline_per_row_and_small_batches():
    captum_attr = pytest.importorskip("captum.attr")
    net, x = _net(), _images()
    base = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    ours = pellucid.occlusion(net, x, window=(3, 4, 4), stride=(3, 4, 4), baseline=base,
                              target=[0, 1, 2], batch_size=5)
    theirs = captum_attr.Occlusion(net).attribute(x, sliding_window_shapes=(3, 4, 4),
                                                  strides=(3, 4, 4), baselines=base,
                                                  target=torch.tensor([0, 1, 2]))
    torch.testing.assert_close(ours.values, theirs, atol=1e-5, rtol=0)


def test_groups_ablate_each_group_and_spread_its_drop():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    x = torch.ones(2, 4)
    expl = pellucid.occlusion(lambda a: a @ w, x, groups=[[0, 1], [2, 3]])
    torch.testing.assert_close(expl.per_row["group_values"][0].double(),
                               torch.tensor([3.0, 7.0], dtype=torch.float64))
    torch.testing.assert_close(expl.values[0].double(),
                               torch.tensor([1.5, 1.5, 3.5, 3.5], dtype=torch.float64))


def test_black_box_numpy_model_and_state(cnn, images, model_state):
    f = lambda a: np.asarray(a).reshape(len(a), -1)[:, :10].sum(1)  # noqa: E731
    expl = pellucid.occlusion(f, images, window=(1, 2, 2), stride=(1, 2, 2))
    assert expl.values.shape == images.shape
    assert (expl.values.reshape(6, -1)[:, 16:] == 0).all()
    cnn.train()
    before = model_state.snapshot(cnn)
    pellucid.occlusion(cnn, images, window=(1, 4, 4), stride=4)
    model_state.assert_same(before, model_state.snapshot(cnn))


def test_errors():
    x = _images(1)
    with pytest.raises(InputError, match="larger than a row"):
        pellucid.occlusion(_net(), x, window=(3, 9, 9))
    with pytest.raises(InputError, match="one positive int per dimension"):
        pellucid.occlusion(_net(), x, window=(4, 4))
    with pytest.raises(InputError, match="window= .*or groups="):
        pellucid.occlusion(_net(), x)
    with pytest.raises(BaselineError):
        pellucid.occlusion(_net(), x, window=2, baseline=torch.zeros(2, 2))
