"""compare(): several methods scored by several metrics in one table."""
from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

import pellucid
from pellucid import evaluate as ev
from pellucid.evaluate import Comparison, compare

METHODS = ["integrated_gradients", "saliency", "random"]
METRICS = ["deletion", "insertion", "sparseness"]


@pytest.fixture(scope="module")
def digits():
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn()
    return model, load_digits().x_test[:16]


@pytest.fixture(scope="module")
def result(digits):
    model, x = digits
    return compare(model, x, methods=METHODS, metrics=METRICS, seed=0)


def test_table_holds_the_means_of_the_metrics_called_directly(digits, result):
    model, x = digits
    assert isinstance(result, Comparison)
    assert list(result.table) == METHODS
    assert all(list(row) == METRICS for row in result.table.values())
    assert result.higher_is_better == {"deletion": False, "insertion": True, "sparseness": True}
    target = model(x).argmax(dim=1)
    for name in METHODS:
        expl = result.explanations[name]
        assert torch.equal(expl.target, target)  # every method explains the predicted class
        fresh = pellucid.explain(model, x, name, target=target,
                                 **({"seed": 0} if name == "random" else {}))
        assert torch.equal(fresh.values, expl.values)
        direct = {"deletion": ev.deletion(model, fresh, seed=0),
                  "insertion": ev.insertion(model, fresh, seed=0),
                  "sparseness": ev.sparseness(fresh)}
        for metric, score in direct.items():
            assert result.table[name][metric] == score.mean
            assert torch.equal(result.scores[name][metric].values, score.values)


def test_integrated_gradients_beats_random(result):
    t = result.table
    assert t["integrated_gradients"]["deletion"] < t["random"]["deletion"]
    assert t["integrated_gradients"]["insertion"] > t["random"]["insertion"]
    assert result.ranks()[0].tolist() == [1.0, 1.0, 1.0]  # IG best on all three here


def test_markdown_has_a_row_per_method(result):
    md = result.to_markdown()
    lines = md.splitlines()
    assert len(lines) == 2 + len(METHODS)
    assert lines[0].startswith("| method | deletion ↓ | insertion ↑ | sparseness ↑")
    for name, line in zip(METHODS, lines[2:]):
        assert line.startswith(f"| {name} |")


def test_plot_is_a_figure_without_pyplot(result):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = result.plot()
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == before
    ax = fig.axes[0]
    assert len(ax.texts) == len(METHODS) * len(METRICS)


def test_labels_params_and_errors(digits):
    model, x = digits
    x = x[:4]
    c = compare(model, x, methods={"ig riemann": ("integrated_gradients", {"method": "riemann_left",
                                                                            "steps": 8}),
                                   "sal": "saliency"},
                metrics=[("sparseness", {})], target=3)
    assert list(c.table) == ["ig riemann", "sal"]
    assert c.explanations["ig riemann"].params["method"] == "riemann_left"
    assert (c.explanations["sal"].target == 3).all()
    with pytest.raises(ValueError, match="no metric named"):
        compare(model, x, methods=["saliency"], metrics=["nope"])
    with pytest.raises(ValueError, match="twice"):
        compare(model, x, methods=["saliency", "saliency"], metrics=["sparseness"])


def test_ranks_follow_each_metrics_direction_and_skip_nan():
    c = Comparison(table={"a": {"low": 1.0, "high": 1.0}, "b": {"low": 2.0, "high": float("nan")},
                          "c": {"low": 3.0, "high": 5.0}},
                   scores={}, higher_is_better={"low": False, "high": True})
    r = c.ranks()
    assert r[:, 0].tolist() == [1.0, 0.5, 0.0]
    assert r[0, 1] == 0.0 and r[2, 1] == 1.0 and r[1, 1] != r[1, 1]
    assert "nan" in c.to_markdown() and isinstance(c.plot(), Figure)
