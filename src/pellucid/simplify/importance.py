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
  rows (Lundberg & Lee 2017, the "mean |SHAP|" bar plot). Uses
  :func:`pellucid.attribution.shapley.permutation_shapley`; a small built-in permutation-sampling
  estimate stands in when that module is not installed (see :func:`_shapley_values`). Cost:
  about ``n · 2·permutations · d · B`` model rows for ``B`` background rows.
- ``"tree"``: mean decrease in impurity of a random forest fit to the model's predictions
  (Breiman 2001), with its out-of-bag fidelity in ``meta``. Model-agnostic. Cost: ``n`` model
  rows plus a forest fit.

Rows with more than one dimension (images) count one feature per element.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..model import Model, gather, select_target
from ..adapters import wrap
from ._common import classes, predict, split_data
from ._report import table
from .surrogate import names_for

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

    def table(self, top: int | None = 20) -> str:
        order = self.ranking[:top] if top else self.ranking
        v, s = self.values.tolist(), self.std.tolist()
        return table(["rank", "feature", "importance", "std"],
                     [[i + 1, self.feature_names[j], float(v[j]), float(s[j])] for i, j in enumerate(order)])

    def __str__(self) -> str:
        return f"global importance ({self.method}), {len(self.values)} features\n{self.table()}"

    def __repr__(self) -> str:
        return f"Importance({self.method}, top={self.top(3)})"

    def plot(self, *, top: int = 20, ax: Any = None) -> Any:
        """Horizontal bars, most important on top, with the spread as error bars."""
        from types import SimpleNamespace

        from matplotlib.figure import Figure

        from ..plot.tabular import draw_bars

        if ax is None:
            shown = min(top, len(self.values)) + (len(self.values) > top)
            fig = Figure(figsize=(6.0, 0.32 * shown + 1.2), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        fake = SimpleNamespace(values=self.values.detach().cpu()[None], inputs=None,
                               feature_names=self.feature_names)
        draw_bars(ax, fake, 0, top=top, title=f"global importance · {self.method}")
        # the bars are ordered as draw_bars orders them (by |value|), so the error bars must be too
        order = torch.from_numpy(np.argsort(-np.abs(self.values.detach().cpu().double().numpy()),
                                            kind="stable")[:top].copy())
        pos = np.arange(len(order) + (len(self.values) > top))[::-1][:len(order)]
        ax.errorbar(self.values[order].cpu().numpy(), pos, xerr=self.std[order].cpu().numpy(),
                    fmt="none", ecolor="0.25", elinewidth=0.8, capsize=2)
        ax.set_xlabel(f"importance ({self.method})")
        return fig


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1)


def global_importance(
    model: Any,
    data: Any,
    *,
    method: str = "permutation",
    labels: Any = None,
    target: Any = None,
    repeats: int = 5,
    permutations: int = 5,
    background: Any = None,
    background_rows: int = 20,
    rows: int | None = 500,
    trees: int = 100,
    feature_names: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> Importance:
    """Importance of each input feature for ``model`` over ``data`` (see the module doc).

    Options:
        method: ``"permutation"`` (default), ``"gradient"``, ``"shap"`` or ``"tree"``.
        labels: true classes per row; permutation importance then measures the accuracy drop
            (default: agreement with the model's own predictions). ``data`` may also be a pair.
        target: output explained by gradient and shap (default: each row's predicted class).
        repeats: permutations per feature for ``"permutation"`` (default 5).
        permutations: orders sampled per row for ``"shap"`` (default 5, each also reversed).
        background, background_rows: background rows for ``"shap"`` (default: ``background_rows``
            rows of ``data`` drawn with ``seed``).
        rows: at most this many rows of ``data`` are used (a seeded subsample; default 500).
        trees: forest size for ``"tree"`` (default 100).
        feature_names: names for the table and the plot (default ``x0, x1, …``).
        seed: every random choice (the global RNG is not touched).

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(3, 2)
        >>> imp = global_importance(net, torch.randn(200, 3), method="gradient")
        >>> len(imp.values), imp.method
        (3, 'gradient')
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    m = wrap(model, batch_size=batch_size)
    x, y = split_data(m, data)
    if labels is not None:
        _, y = split_data(m, (x, labels))
    gen = torch.Generator().manual_seed(seed)
    if rows is not None and len(x) > rows:
        keep = torch.randperm(len(x), generator=gen)[:rows].to(x.device)
        x, y = x[keep], (None if y is None else y[keep])
    d = math.prod(x.shape[1:])
    names = names_for(d, feature_names)
    params = {"method": method, "repeats": repeats, "permutations": permutations, "rows": rows,
              "seed": seed, "labelled": y is not None}
    meta: dict[str, Any] = {"rows": len(x)}
    if method == "permutation":
        values, std = _permutation(m, x, y, repeats, gen, batch_size, meta)
    elif method == "gradient":
        m.require_gradients("global_importance(method='gradient')")
        with m.explaining():
            g, _, _ = m.gradients(x, target, batch_size=batch_size, progress=False)
        per_row = _flat(g).abs() * _flat(x).std(dim=0)
        values, std = per_row.mean(dim=0), per_row.std(dim=0)
    elif method == "shap":
        if background is None:
            background = x[torch.randperm(len(x), generator=gen)[:background_rows].to(x.device)]
        phi = _flat(_shapley_values(m, x, background, target, permutations, seed, batch_size)).abs()
        values, std = phi.mean(dim=0), phi.std(dim=0)
    else:
        values, std = _forest(m, x, trees, seed, batch_size, meta)
    return Importance(values.detach().double().cpu(), std.detach().double().cpu(), names, method, params, meta)


def _permutation(m: Model, x: torch.Tensor, y: torch.Tensor | None, repeats: int, gen: torch.Generator,
                 batch_size: int | None, meta: dict) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InputError(f"repeats must be a positive integer, got {repeats!r}")
    n, flat = len(x), _flat(x)
    d = flat.shape[1]
    base_pred = classes(predict(m, x, batch_size=batch_size))
    truth = y if y is not None else base_pred
    base = (base_pred == truth).double().mean()
    drops = torch.zeros(repeats, d, dtype=torch.float64)
    # Features in blocks so one block of permuted copies holds at most ~2**22 numbers.
    block = max(1, (1 << 22) // max(1, n * d))
    with m.explaining():
        for r in range(repeats):
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
            meta: dict) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.ensemble import RandomForestClassifier

    pred = classes(predict(m, x, batch_size=batch_size)).cpu().numpy()
    xs = _flat(x).detach().cpu().numpy().astype(np.float32)
    forest = RandomForestClassifier(n_estimators=trees, random_state=seed, oob_score=len(np.unique(pred)) > 1,
                                    n_jobs=1)
    forest.fit(xs, pred)
    per_tree = np.stack([t.feature_importances_ for t in forest.estimators_])
    meta["fidelity_oob"] = float(getattr(forest, "oob_score_", float("nan")))
    meta["forest"] = forest
    return torch.as_tensor(forest.feature_importances_), torch.as_tensor(per_tree.std(axis=0))


def _shapley_values(m: Model, x: torch.Tensor, background: Any, target: Any, permutations: int,
                    seed: int, batch_size: int | None) -> torch.Tensor:
    """Shapley values ``(n, *row)`` of the explained output, from the shared implementation.

    pellucid's :func:`~pellucid.attribution.shapley.permutation_shapley` is used when importable;
    otherwise :func:`_own_permutation_shapley` (same estimator, one background row per order).
    """
    try:
        from ..attribution.shapley import permutation_shapley
    except ImportError:
        return _own_permutation_shapley(m, x, background, target, permutations, seed, batch_size)
    return permutation_shapley(m, x, background=background, permutations=permutations, target=target,
                               seed=seed, batch_size=batch_size, progress=False).values


def _own_permutation_shapley(m: Model, x: torch.Tensor, background: Any, target: Any,
                             permutations: int, seed: int, batch_size: int | None) -> torch.Tensor:
    """``φ_j ≈ mean over orders π of f_t(x_{Pre_π(j) ∪ j}, b) − f_t(x_{Pre_π(j)}, b)``.

    Each of ``permutations`` random orders (shared by all rows, each also walked in reverse) is
    paired with one background row ``b`` drawn per row; absent features take ``b``'s values.
    Efficiency holds per order: the contributions telescope to ``f_t(x) − f_t(b)``. Castro,
    Gómez & Tejada 2009, "Polynomial calculation of the Shapley value based on sampling".
    Cost: ``n · 2·permutations · (d + 1)`` model rows.
    """
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise InputError(f"permutations must be a positive integer, got {permutations!r}")
    bg = m.prepare(background, name="background")
    if tuple(bg.shape[1:]) != tuple(x.shape[1:]):
        raise InputError(f"background rows are shaped {tuple(bg.shape[1:])}, inputs {tuple(x.shape[1:])}")
    gen = torch.Generator().manual_seed(seed)
    n, flat = len(x), _flat(x)
    d = flat.shape[1]
    with m.explaining():
        t = select_target(m.outputs(x, batch_size=batch_size, progress=False), target)
        orders = torch.rand(permutations, d, generator=gen).argsort(dim=1)
        orders = torch.cat([orders, orders.flip(1)]).to(x.device)  # (P, d)
        pick = torch.randint(len(bg), (len(orders), n), generator=gen).to(x.device)
        b = _flat(bg)[pick]  # (P, n, d)
        rank = orders.argsort(dim=1)  # (P, d): position of each feature
        steps = torch.arange(d + 1, device=x.device)
        present = rank[:, None, :] < steps[None, :, None]  # (P, d+1, d): first s features present
        phi = torch.zeros(n, d, dtype=torch.float64, device=x.device)
        for p in range(len(orders)):
            hybrid = torch.where(present[p][None], flat[:, None, :], b[p][:, None, :])  # (n, d+1, d)
            out = m.outputs(hybrid.reshape(-1, *x.shape[1:]), batch_size=batch_size, progress=False)
            v = gather(out, t.repeat_interleave(d + 1)).view(n, d + 1).double()
            phi.scatter_add_(1, orders[p][None].expand(n, d), v[:, 1:] - v[:, :-1])
    return (phi / len(orders)).view(x.shape).to(x.dtype)
