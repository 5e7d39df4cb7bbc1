"""pellucid.plot.evaluate: a comparison's grid and a score's curves, built without pyplot."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from pellucid.evaluate import Comparison, Score
from pellucid.plot import evaluate as plots


def test_comparison_grid_writes_every_mean_and_bolds_the_best():
    c = Comparison(means={"a": {"low": 1.0, "high": 1.0}, "b": {"low": 2.0, "high": float("nan")}},
                   scores={}, higher_is_better={"low": False, "high": True})
    before = plt.get_fignums()
    fig = c.plot()
    assert isinstance(fig, Figure) and plt.get_fignums() == before
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["1", "1", "2", "nan"]
    assert [t.get_fontweight() for t in fig.axes[0].texts][:2] == ["bold", "bold"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["low ↓", "high ↑"]
    assert isinstance(plots.comparison(c, cmap="viridis", digits=2), Figure)


def test_score_draws_curves_against_fractions_or_layers_else_a_histogram():
    curves = torch.rand(5, 3, generator=torch.Generator().manual_seed(0))
    deletion = Score("deletion_auc", curves.mean(1), False, curves=curves,
                     meta={"fractions": [0.0, 0.5, 1.0]})
    ax = deletion.plot().axes[0]
    assert len(ax.lines) == 5 + 1 and list(ax.lines[-1].get_xdata()) == [0.0, 0.5, 1.0]
    assert ax.get_xlabel() == "fraction removed"
    mprt = Score("model_randomization_spearman", curves[:, -1], False, curves=curves,
                 meta={"layers": ["fc", "conv2", "conv1"], "mode": "cascade"})
    ax = plots.score(mprt, rows=2).axes[0]
    assert len(ax.lines) == 2 + 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fc", "conv2", "conv1"]
    ax = Score("sparseness", torch.tensor([0.1, float("nan"), 0.3]), True).plot().axes[0]
    assert ax.get_xlabel() == "score per row" and sum(p.get_height() for p in ax.patches) == 2
