"""Tests for pellucid.simplify.global_importance on data whose informative features are planted."""
from __future__ import annotations

import pytest
import torch

from pellucid.adapters import wrap
from pellucid.errors import InputError, NotDifferentiableError
from pellucid.simplify import Importance, global_importance
from pellucid.zoo import planted_tabular, planted_tabular_mlp


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    model, info = planted_tabular_mlp(cache_dir=tmp_path_factory.mktemp("simplify_cache"))
    return model, planted_tabular(400, seed=7), info["informative"]


@pytest.mark.parametrize("method", ["permutation", "gradient", "shap", "tree"])
def test_informative_features_rank_first(planted, method, model_state):
    model, data, informative = planted
    before = model_state.snapshot(model)
    # shap costs rows * 2 * permutations * 9 * background_rows model rows: keep it small
    rows = 60 if method == "shap" else 300
    imp = global_importance(model, (data.x, data.y), method=method, trees=30, rows=rows,
                            background_rows=8)
    model_state.assert_same(before, model_state.snapshot(model))
    assert isinstance(imp, Importance) and imp.values.shape == (10,)
    assert set(imp.ranking[:3]) == set(informative), imp
    assert imp.values[informative].min() > 3 * imp.values[3:].max()
    assert imp.top(1)[0] in {"x0", "x1", "x2"}
    table = imp.table()
    assert [row["rank"] for row in table] == list(range(1, 11))
    assert [row["feature"] for row in table[:3]] == imp.top(3)
    assert "rank" in str(imp) and len(imp.plot().axes) == 1


def test_permutation_with_labels_measures_accuracy(planted):
    model, data, _ = planted
    imp = global_importance(model, data.x, labels=data.y, method="permutation", repeats=2, rows=None)
    with torch.no_grad():
        acc = float((model(data.x).argmax(1) == data.y).float().mean())
    assert imp.meta["baseline_score"] == pytest.approx(acc)
    assert imp.meta["model_rows"] == 2 * 10 * 400 + 400
    again = global_importance(model, data.x, labels=data.y, method="permutation", repeats=2, rows=None)
    assert torch.equal(imp.values, again.values)  # seeded


def test_shap_values_are_efficient_and_rank_without_labels(planted):
    """method="shap" uses pellucid's permutation_shapley: its values add up to f(x) - f(b)."""
    from pellucid.attribution import permutation_shapley

    model, data, informative = planted
    x, b = data.x[:6], data.x[6:7]
    phi = permutation_shapley(wrap(model), x, background=b, permutations=3, seed=0).values
    with torch.no_grad():
        out = model(x)
        t = out.argmax(1)
        expected = out.gather(1, t[:, None])[:, 0] - model(b)[0, t]
    torch.testing.assert_close(phi.sum(1), expected, atol=1e-4, rtol=1e-4)  # efficiency
    imp = global_importance(model, data.x, method="shap", rows=60)
    assert set(imp.ranking[:3]) == set(informative)
    assert imp.params["labelled"] is False and imp.params["permutations"] == 5


def test_clear_errors(planted):
    model, data, _ = planted
    with pytest.raises(InputError, match="method"):
        global_importance(model, data.x, method="lime")
    with pytest.raises(InputError, match="shape"):
        global_importance(model, torch.rand(10, 4))
    with pytest.raises(InputError, match="feature_names"):
        global_importance(model, data.x, feature_names=["a", "b"])
    black_box = wrap(lambda x: model(x).detach())
    black_box.differentiable = False
    with pytest.raises(NotDifferentiableError):
        global_importance(black_box, data.x, method="gradient")


def test_plot_error_bars_sit_on_their_bars():
    """Bars are drawn by |value|; a negative importance's error bar must be centred on its own bar."""
    imp = Importance(values=torch.tensor([0.5, -0.8, 0.1, 0.3]), std=torch.tensor([0.1, 0.2, 0.05, 0.1]),
                     method="permutation", feature_names=["a", "b", "c", "d"])
    ax = imp.plot().axes[0]
    widths = [round(p.get_width(), 6) for p in ax.patches]
    segments = ax.containers[-1].lines[2][0].get_segments()
    centres = [round(float(s[:, 0].mean()), 6) for s in segments]
    assert widths == [-0.8, 0.5, 0.3, 0.1] and centres == widths
