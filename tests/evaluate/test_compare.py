"""compare(): several methods scored by several metrics in one table."""
from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import pellucid
from pellucid import evaluate as ev
from pellucid.errors import InputError, UnknownMethodError
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
    assert list(result.means) == METHODS
    assert all(list(row) == METRICS for row in result.means.values())
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
            assert result.means[name][metric] == score.mean
            assert torch.equal(result.scores[name][metric].values, score.values)


def test_integrated_gradients_beats_random(result):
    t = result.means
    assert t["integrated_gradients"]["deletion"] < t["random"]["deletion"]
    assert t["integrated_gradients"]["insertion"] > t["random"]["insertion"]
    assert result.ranks()[0].tolist() == [1.0, 1.0, 1.0]  # IG best on all three here


def test_table_is_rows_and_str_is_their_text(result):
    rows = result.table()
    assert [row["method"] for row in rows] == METHODS
    assert all(list(row) == ["method", *METRICS] for row in rows)
    assert rows[0]["deletion"] == result.means["integrated_gradients"]["deletion"]
    lines = str(result).splitlines()
    assert lines[0].split() == ["method", "deletion", "↓", "insertion", "↑", "sparseness", "↑"]
    assert len(lines) == 2 + len(METHODS) and lines[2].startswith("integrated_gradients")


def test_the_old_table_dict_still_reads_with_a_warning(result):
    with pytest.warns(DeprecationWarning, match="Comparison.means"):
        assert result.table["saliency"] == result.means["saliency"]
    with pytest.warns(DeprecationWarning):
        assert list(result.table) == METHODS
    with pytest.warns(DeprecationWarning, match="table="):
        old = Comparison(table=result.means, scores={}, higher_is_better=result.higher_is_better)
    assert old.means == result.means


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
    c = compare(model, x, methods={"ig riemann": ("integrated_gradients", {"rule": "riemann_left",
                                                                            "steps": 8}),
                                   "sal": "saliency"},
                metrics=[("sparseness", {})], target=3)
    assert list(c.means) == ["ig riemann", "sal"]
    assert c.explanations["ig riemann"].params["rule"] == "riemann_left"
    assert (c.explanations["sal"].target == 3).all()
    with pytest.raises(UnknownMethodError, match="no metric named"):
        compare(model, x, methods=["saliency"], metrics=["nope"])
    with pytest.raises(ValueError, match="twice"):
        compare(model, x, methods=["saliency", "saliency"], metrics=["sparseness"])


def test_metrics_come_from_the_registry_by_name_or_function(digits):
    """Every metric is called metric(model, explanation, **options): those that need a mask get
    compare's, those that re-run the method get the registered one, a user's function is called
    the same way."""
    model, x = digits
    x = x[:4]
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[..., 2:6, 2:6] = True

    def peak(model, explanation):
        return ev.Score("peak", explanation.values.flatten(1).amax(dim=1), higher_is_better=True)

    c = compare(model, x, methods=["saliency"], mask=mask, seed=0, progress=False,
                metrics={"pg": "pointing_game", "sparse": ev.sparseness, "peak": peak,
                         "sens": ("max_sensitivity", {"samples": 3}),
                         "mprt": "model_randomization",
                         "mass": ("relevance_mass", {"mask": ~mask})})
    e = c.explanations["saliency"]
    assert torch.equal(c.scores["saliency"]["pg"].values, ev.pointing_game(e, mask).values)
    assert torch.equal(c.scores["saliency"]["mass"].values, ev.relevance_mass(e, ~mask).values)
    assert torch.equal(c.scores["saliency"]["sparse"].values, ev.sparseness(e).values)
    assert c.scores["saliency"]["peak"].name == "peak"
    sens = ev.max_sensitivity(model, e, samples=3, seed=0)
    assert torch.equal(c.scores["saliency"]["sens"].values, sens.values)
    mprt = ev.model_randomization(model, x, method="saliency", target=e.target, seed=0)
    torch.testing.assert_close(c.scores["saliency"]["mprt"].curves, mprt.curves)
    assert c.higher_is_better == {"pg": True, "sparse": True, "peak": True, "sens": False,
                                  "mprt": False, "mass": True}
    with pytest.raises(InputError, match="mask"):
        compare(model, x, methods=["saliency"], metrics=["pointing_game"])
    with pytest.raises(InputError, match="shuffled_model"):
        compare(model, x, methods=["saliency"], metrics=["data_randomization"])
    with pytest.raises(InputError, match="registered"):
        compare(model, x, methods={"own": lambda m, x, target: pellucid.saliency(m, x, target=target)},
                metrics=["max_sensitivity"])


def test_model_state_and_global_rng_are_left_as_found(model_state):
    """In train mode BatchNorm would update its statistics and Dropout draw from the global RNG
    if compare ran the model outside the state guard."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                          nn.Dropout(0.5), nn.Linear(16, 4)).train()
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    before, rng = model_state.snapshot(model), torch.get_rng_state()
    c = compare(model, x, methods=["saliency", "random"], metrics=["deletion", "max_sensitivity"],
                progress=False)
    model_state.assert_same(before, model_state.snapshot(model))
    assert torch.equal(rng, torch.get_rng_state())
    model.eval()
    assert torch.equal(c.explanations["saliency"].target, model(x).argmax(dim=1))


def test_ranks_follow_each_metrics_direction_and_skip_nan():
    c = Comparison(means={"a": {"low": 1.0, "high": 1.0}, "b": {"low": 2.0, "high": float("nan")},
                          "c": {"low": 3.0, "high": 5.0}},
                   scores={}, higher_is_better={"low": False, "high": True})
    r = c.ranks()
    assert r[:, 0].tolist() == [1.0, 0.5, 0.0]
    assert r[0, 1] == 0.0 and r[2, 1] == 1.0 and r[1, 1] != r[1, 1]
    assert "nan" in c.to_markdown() and isinstance(c.plot(), Figure)
