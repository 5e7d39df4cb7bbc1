"""nearest_examples against a brute-force distance computation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

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
def test_euclidean_matches_brute_force(mlp, rows, batch_size, model_state):
    q, data = rows
    before = model_state.snapshot(mlp)
    r = nearest_examples(mlp, q, data, layer="1", k=6, batch_size=batch_size)
    with torch.no_grad():
        d = torch.cdist(mlp[:2](q), mlp[:2](data))
    ref_d, ref_i = d.topk(6, dim=1, largest=False)
    assert torch.equal(r.indices, ref_i)
    assert torch.allclose(r.distances, ref_d, atol=1e-5)
    assert r.labels is None
    model_state.assert_same(before, model_state.snapshot(mlp))


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


def test_errors(mlp, rows, model_state):
    q, data = rows
    before = model_state.snapshot(mlp)
    with pytest.raises(LayerError, match="unknown layer 'fc'"):
        nearest_examples(mlp, q, data, layer="fc")
    with pytest.raises(InputError, match="k must be an int from 1 to the data's 37 rows"):
        nearest_examples(mlp, q, data, layer="1", k=38)
    with pytest.raises(InputError, match="metric must be"):
        nearest_examples(mlp, q, data, layer="1", metric="manhattan")
    with pytest.raises(InputError, match=r"labels must have one entry per row of data \(37\)"):
        nearest_examples(mlp, q, data, layer="1", labels=[0, 1])
    model_state.assert_same(before, model_state.snapshot(mlp))


def test_digits_neighbours_share_label():
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn()
    d = load_digits()
    r = nearest_examples(model, d.x_test[:50], d.x_train, layer="classifier.2", k=5,
                         labels=d.y_train, batch_size=256)
    agree = (r.labels == d.y_test[:50, None]).float().mean().item()
    print(f"digits: share of 5 nearest neighbours (classifier.2) with the query's label = {agree:.3f}")
    assert agree > 0.9


def test_reused_layer_refused_and_call_sites(rows, model_state):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 6)
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            return self.head(self.lin(torch.tanh(self.lin(x))))

    torch.manual_seed(0)
    net = Twice()
    q, data = rows
    before = model_state.snapshot(net)
    with pytest.raises(LayerError, match="pick one call site: 'lin@0', 'lin@1'"):
        nearest_examples(net, q, data, layer="lin", k=3)
    for call, rep in ((0, net.lin), (1, lambda v: net.lin(torch.tanh(net.lin(v))))):
        r = nearest_examples(net, q, data, layer=f"lin@{call}", k=3, batch_size=8)
        with torch.no_grad():
            ref_d, ref_i = torch.cdist(rep(q), rep(data)).topk(3, dim=1, largest=False)
        assert torch.equal(r.indices, ref_i) and r.layer == f"lin@{call}"
        assert torch.allclose(r.distances, ref_d, atol=1e-5)
    model_state.assert_same(before, model_state.snapshot(net))


def test_old_keyword_names_warn_and_agree(mlp, rows):
    q, data = rows
    new = nearest_examples(mlp, q, data, layer="1", k=3)
    with pytest.warns(DeprecationWarning, match=r"nearest_examples\(queries=...\).*inputs="):
        old = nearest_examples(mlp, queries=q, data=data, layer="1", k=3)
    assert torch.equal(old.indices, new.indices)
    with pytest.warns(DeprecationWarning, match=r"nearest_examples\(dataset=...\).*data="):
        old = nearest_examples(mlp, q, dataset=data, layer="1", k=3)
    assert torch.equal(old.indices, new.indices)


def test_table_and_text(mlp, rows):
    q, data = rows
    labels = torch.arange(37) % 4
    r = nearest_examples(mlp, q[:2], data, layer="1", k=3, labels=labels)
    tab = r.table()
    assert len(tab) == 6 and tab[4] == {"row": 1, "rank": 1, "example": int(r.indices[1, 1]),
                                        "distance": float(r.distances[1, 1]),
                                        "label": int(r.labels[1, 1])}
    assert str(r).startswith("nearest examples in '1' (euclidean)") and len(str(r).splitlines()) == 3 + 6
