"""Global feature importance: which input features the model relies on, over a whole data set.

One function, four estimators, one result (:class:`Importance`: a table and a bar plot):

- ``"permutation"``: ``I_j = s(f, X) − mean_r s(f, X with column j permuted)`` where ``s`` is the
  accuracy on ``labels`` or, without labels, the agreement with the model's own predictions
  (Breiman 2001, "Random Forests"; Fisher, Rudin & Dominici 2019, "All Models are Wrong, but Many
  are Useful"). Model-agnostic. Cost: ``repeats · d · n`` model rows.
- ``"gradient"``: ``I_j = σ_j · mean_i |∂f_t(x_i)/∂x_ij|`` — the mean local sensitivity of the
  explained output, scaled by the feature's spread so that units do not matter (Simonyan et al.
  2014 saliency, averaged). Needs gradients. Cost: one forward and backward pass over the rows.
- ``"shap"``: ``I_j = mean_i |φ_ij|``, Shapley values of the explained output against background
  rows (Lundberg & Lee 2017, the "mean |SHAP|" bar plot), estimated by
  :func:`pellucid.attribution.shapley.permutation_shapley`. Cost: about
  ``n · 2·permutations · d · B`` model rows for ``B`` background rows.
- ``"tree"``: mean decrease in impurity of a random forest fit to the model's predictions
  (Breiman 2001), with its out-of-bag fidelity in ``meta``. Model-agnostic. Cost: ``n`` model
  rows plus a forest fit.

Rows with more than one dimension (images) count one feature per element.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._common import check_choice, check_positive_int
from .._table import text_table
from ..adapters import wrap
from ..attribution.shapley import permutation_shapley
from ..model import Model
from ._data import feature_names_for, feature_rows, split_data
from ._report import recorded
from ._training import classes, predict, steps

__all__ = ["Importance", "global_importance", "METHODS"]

METHODS = ("permutation", "gradient", "shap", "tree")


@dataclass(eq=False)
class Importance:
    """One importance per feature (``values``, higher is more important) and its spread (``std``:
    over repeats for permutation, over rows for gradient and shap, over trees for tree)."""

    values: torch.Tensor
    std: torch.Tensor
    feature_names: list[str]
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ranking(self) -> list[int]:
        """Feature indices, most important first (ties by position)."""
        return np.argsort(-self.values.detach().cpu().numpy(), kind="stable").tolist()

    def top(self, k: int) -> list[str]:
        return [self.feature_names[j] for j in self.ranking[:k]]

    def table(self, top: int | None = None) -> list[dict[str, Any]]:
        """One row per feature, most important first: ``rank``, ``feature``, ``importance``,
        ``std`` (the ``top`` first only, when given)."""
        v, s = self.values.tolist(), self.std.tolist()
        return [{"rank": i + 1, "feature": self.feature_names[j], "importance": float(v[j]),
                 "std": float(s[j])} for i, j in enumerate(self.ranking[:top])]

    def __str__(self) -> str:
        shown = min(20, len(self.values))
        more = "" if shown == len(self.values) else f" (the {shown} most important)"
        return text_table(self.table(top=shown),
                          title=f"global importance ({self.method}), {len(self.values)} features{more}")

    def __repr__(self) -> str:
        return f"Importance({self.method}, top={self.top(3)})"

    def plot(self, **kwargs: Any) -> Any:
        """Horizontal bars with the spread as error bars (see :func:`pellucid.plot.simplify.importance`)."""
        from ..plot import simplify as _plots

        return _plots.importance(self, **kwargs)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1)


@recorded("labels", "background", "feature_names")
def global_importance(
    model: Any,
    data: Any,
    *,
    labels: Any = None,
    target: Any = None,
    method: str = "permutation",
    repeats: int = 5,
    permutations: int = 5,
    background: Any = None,
    background_rows: int = 20,
    rows: int | None = 500,
    trees: int = 100,
    feature_names: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Importance:
    """Importance of each input feature for ``model`` over ``data`` (see the module doc).

    Options:
        labels: true classes per row; permutation importance then measures the accuracy drop
            (default: agreement with the model's own predictions). ``data`` may also be a pair.
        target: output explained by gradient and shap (default: each row's predicted class).
        method: ``"permutation"`` (default), ``"gradient"``, ``"shap"`` or ``"tree"``.
        repeats: permutations per feature for ``"permutation"`` (default 5).
        permutations: orders sampled per row for ``"shap"`` (default 5, each also reversed).
        background, background_rows: background rows for ``"shap"`` (default: ``background_rows``
            rows of ``data`` drawn with ``seed``).
        rows: at most this many rows of ``data`` are used (a seeded subsample; default 500).
        trees: forest size for ``"tree"`` (default 100).
        feature_names: names for the table and the plot (default ``x0, x1, …``).
        seed: every random choice (the global RNG is not touched).
        batch_size: rows per forward pass of the model.
        progress: a progress bar on runs longer than two seconds.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(3, 2)
        >>> imp = global_importance(net, torch.randn(200, 3), method="gradient")
        >>> len(imp.values), imp.method
        (3, 'gradient')
    """
    check_choice(method, "method", METHODS)
    for name, value in (("repeats", repeats), ("background_rows", background_rows), ("trees", trees)):
        check_positive_int(value, name)
    if rows is not None:
        rows = check_positive_int(rows, "rows")
    m = wrap(model, batch_size=batch_size)
    x, y = split_data(m, data)
    if labels is not None:
        _, y = split_data(m, (x, labels))
    gen = torch.Generator().manual_seed(seed)
    if rows is not None and len(x) > rows:
        keep = torch.randperm(len(x), generator=gen)[:rows].to(x.device)
        x, y = x[keep], (None if y is None else y[keep])
    names = feature_names_for(math.prod(x.shape[1:]), feature_names)
    meta: dict[str, Any] = {"rows": len(x)}
    if method == "permutation":
        values, std = _permutation(m, x, y, repeats, gen, batch_size, progress, meta)
    elif method == "gradient":
        m.require_gradients("global_importance(method='gradient')")
        with m.explaining():
            g, _, _ = m.gradients(x, target, batch_size=batch_size, progress=progress)
        per_row = _flat(g).abs() * _flat(x).std(dim=0)
        values, std = per_row.mean(dim=0), per_row.std(dim=0)
    elif method == "shap":
        if background is None:
            background = x[torch.randperm(len(x), generator=gen)[:background_rows].to(x.device)]
        phi = permutation_shapley(m, x, target=target, background=background, permutations=permutations,
                                  seed=seed, batch_size=batch_size, progress=progress).values
        values, std = _flat(phi).abs().mean(dim=0), _flat(phi).abs().std(dim=0)
    else:
        values, std = _forest(m, x, trees, seed, batch_size, progress, meta)
    return Importance(values.detach().double().cpu(), std.detach().double().cpu(), names, method,
                      {"labelled": y is not None}, meta)


def _permutation(m: Model, x: torch.Tensor, y: torch.Tensor | None, repeats: int, gen: torch.Generator,
                 batch_size: int | None, progress: bool | None, meta: dict
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    n, flat = len(x), _flat(x)
    d = flat.shape[1]
    base_pred = classes(predict(m, x, batch_size=batch_size))
    truth = y if y is not None else base_pred
    base = (base_pred == truth).double().mean()
    drops = torch.zeros(repeats, d, dtype=torch.float64)
    # Features in blocks so one block of permuted copies holds at most ~2**22 numbers.
    block = max(1, (1 << 22) // max(1, n * d))
    with m.explaining():
        for r in steps(repeats, progress, "permutation importance", "repeat"):
            perm = torch.randperm(n, generator=gen).to(x.device)
            for j0 in range(0, d, block):
                js = torch.arange(j0, min(d, j0 + block), device=x.device)
                copies = flat[None].repeat(len(js), 1, 1)  # (b, n, d)
                copies[torch.arange(len(js)), :, js] = flat[perm][:, js].T
                out = m.outputs(copies.reshape(-1, *x.shape[1:]), batch_size=batch_size, progress=False)
                pred = classes(out).view(len(js), n)
                drops[r, j0:j0 + len(js)] = base - (pred == truth[None]).double().mean(dim=1).cpu()
    meta["baseline_score"] = float(base)
    meta["model_rows"] = repeats * d * n + n
    return drops.mean(dim=0), drops.std(dim=0) if repeats > 1 else torch.zeros(d, dtype=torch.float64)


def _forest(m: Model, x: torch.Tensor, trees: int, seed: int, batch_size: int | None,
            progress: bool | None, meta: dict) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.ensemble import RandomForestClassifier

    pred = classes(predict(m, x, batch_size=batch_size, progress=progress)).cpu().numpy()
    xs = feature_rows(x)
    forest = RandomForestClassifier(n_estimators=trees, random_state=seed, oob_score=len(np.unique(pred)) > 1,
                                    n_jobs=1)
    forest.fit(xs, pred)
    per_tree = np.stack([t.feature_importances_ for t in forest.estimators_])
    meta["fidelity_oob"] = float(getattr(forest, "oob_score_", float("nan")))
    meta["forest"] = forest
    return torch.as_tensor(forest.feature_importances_), torch.as_tensor(per_tree.std(axis=0))
