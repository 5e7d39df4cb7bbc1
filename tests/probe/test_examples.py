"""nearest_examples against a brute-force distance computation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import assert_same_state, snapshot
from pellucid.errors import InputError, LayerError
from pellucid.probe import nearest_examples


@pytest.fixture
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.fixture
def rows() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randn(5, 6, generator=g), torch.randn(37, 6, generator=g)


@pytest.mark.parametrize("batch_size", [None, 3, 10])
def test_euclidean_matches_brute_force(mlp, rows, batch_size):
    q, data = rows
    before = snapshot(mlp)
    r = nearest_examples(mlp, q, data, layer="1", k=6, batch_size=batch_size)
    with torch.no_grad():
        d = torch.cdist(mlp[:2](q), mlp[:2](data))
    ref_d, ref_i = d.topk(6, dim=1, largest=False)
    assert torch.equal(r.indices, ref_i)
    assert torch.allclose(r.distances, ref_d, atol=1e-5)
    assert r.labels is None
    assert_same_state(before, snapshot(mlp))


def test_cosine_and_labels_match_brute_force(mlp, rows):
    q, data = rows
    labels = torch.arange(37) % 4
    r = nearest_examples(mlp, q, data, layer=mlp[2], k=4, labels=labels, metric="cosine",
                         batch_size=2)
    with torch.no_grad():
        d = 1 - F.normalize(mlp[:3](q), dim=1) @ F.normalize(mlp[:3](data), dim=1).T
    ref_d, ref_i = d.topk(4, dim=1, largest=False)
    assert torch.equal(r.indices, ref_i)
    assert torch.allclose(r.distances, ref_d, atol=1e-5)
    assert torch.equal(r.labels, labels[ref_i])


def test_images_flattened(cnn, images):
    r = nearest_examples(cnn, images[:2], images, layer="features.2", k=1, batch_size=4)
    assert r.indices[:, 0].tolist() == [0, 1]  # each query is its own nearest neighbour
    assert torch.allclose(r.distances, torch.zeros(2, 1), atol=1e-4)


def test_errors(mlp, rows):
    q, data = rows
    before = snapshot(mlp)
    with pytest.raises(LayerError, match="unknown layer 'fc'"):
        nearest_examples(mlp, q, data, layer="fc")
    with pytest.raises(InputError, match="k must be an int from 1 to the dataset's 37 rows"):
        nearest_examples(mlp, q, data, layer="1", k=38)
    with pytest.raises(InputError, match="metric must be"):
        nearest_examples(mlp, q, data, layer="1", metric="manhattan")
    with pytest.raises(InputError, match="labels must have one entry per dataset row"):
        nearest_examples(mlp, q, data, layer="1", labels=[0, 1])
    assert_same_state(before, snapshot(mlp))


def test_digits_neighbours_share_label():
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn()
    d = load_digits()
    r = nearest_examples(model, d.x_test[:50], d.x_train, layer="classifier.2", k=5,
                         labels=d.y_train, batch_size=256)
    agree = (r.labels == d.y_test[:50, None]).float().mean().item()
    print(f"digits: share of 5 nearest neighbours (classifier.2) with the query's label = {agree:.3f}")
    assert agree > 0.9
