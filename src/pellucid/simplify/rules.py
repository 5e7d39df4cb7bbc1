"""IF–THEN rules read off a surrogate decision tree: one rule per leaf.

A leaf's rule is the conjunction of the tests on its root-to-leaf path, with tests on the same
feature merged into one interval (``x3 <= 0.2 AND x3 <= 0.7`` becomes ``x3 <= 0.2``); its
prediction is the leaf's majority class. The rules of a tree are mutually exclusive and cover
every input, so applying them gives exactly the tree's predictions (tests compare in float32 →
float64, as scikit-learn does). Each rule carries

- ``support``: the share of rows that satisfy it, and
- ``confidence``: the share of those rows on which the *model* predicts the rule's class,

measured on the surrogate's training rows, or on ``data`` when given (Quinlan 1993, C4.5 rules;
the support/confidence vocabulary of association rules, Agrawal et al. 1993).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..adapters import wrap
from ._common import classes, predict, split_data
from ._report import table
from .surrogate import SurrogateTree, _rows

__all__ = ["Rule", "Rules", "rules"]


@dataclass(frozen=True)
class Rule:
    """``IF all conditions THEN prediction``; a condition is ``(feature index, op, threshold)``
    with ``op`` in ``"<="`` / ``">"``."""

    conditions: tuple[tuple[int, str, float], ...]
    prediction: int
    support: float
    confidence: float
    rows: int
    feature_names: tuple[str, ...] = field(repr=False, default=())
    class_name: str = ""

    def holds(self, inputs: Any) -> np.ndarray:
        """Boolean per row: does the row satisfy every condition?"""
        x = _rows(inputs).astype(np.float64)
        ok = np.ones(len(x), dtype=bool)
        for j, op, t in self.conditions:
            ok &= (x[:, j] <= t) if op == "<=" else (x[:, j] > t)
        return ok

    def __str__(self) -> str:
        names = self.feature_names or tuple(f"x{j}" for j in range(1 + max((c[0] for c in self.conditions), default=0)))
        cond = " AND ".join(f"{names[j]} {op} {t:.4g}" for j, op, t in self.conditions) or "always"
        return (f"IF {cond} THEN {self.class_name or self.prediction} "
                f"(support {100 * self.support:.1f}%, confidence {100 * self.confidence:.1f}%)")


@dataclass(eq=False)
class Rules:
    """The rules of a surrogate tree, largest support first; prints, returns data, draws."""

    rules: list[Rule]
    feature_names: list[str]
    class_names: dict[int, str]
    fidelity: float | None = None

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self):
        return iter(self.rules)

    def __getitem__(self, i: int) -> Rule:
        return self.rules[i]

    def predict(self, inputs: Any) -> np.ndarray:
        """The class of the rule each row satisfies (exactly one does)."""
        x = _rows(inputs)
        out = np.full(len(x), -1, dtype=np.int64)
        for r in self.rules:
            out[r.holds(x)] = r.prediction
        return out

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rules as plain data: conditions by feature name, prediction, support, confidence."""
        return [{"conditions": [(self.feature_names[j], op, t) for j, op, t in r.conditions],
                 "prediction": r.prediction, "class": r.class_name, "support": r.support,
                 "confidence": r.confidence, "rows": r.rows} for r in self.rules]

    def table(self) -> str:
        rows = [[str(i + 1), " AND ".join(f"{self.feature_names[j]} {op} {t:.4g}" for j, op, t in r.conditions)
                 or "always", r.class_name, f"{100 * r.support:.1f}%", f"{100 * r.confidence:.1f}%"]
                for i, r in enumerate(self.rules)]
        return table(["#", "IF", "THEN", "support", "confidence"], rows)

    def __str__(self) -> str:
        head = f"{len(self.rules)} rules" + (
            "" if self.fidelity is None else f" (fidelity of the tree: {100 * self.fidelity:.2f}%)")
        return head + "\n" + "\n".join(str(r) for r in self.rules)

    def __repr__(self) -> str:
        return f"Rules(n={len(self.rules)}, fidelity={self.fidelity})"

    def plot(self, *, top: int = 20) -> Any:
        """One bar per rule (its support), coloured by class, labelled with the rule."""
        from matplotlib.figure import Figure
        from matplotlib import colormaps

        shown = self.rules[:top]
        longest = max((len(" ∧ ".join(f"{self.feature_names[j]} {op} {t:.3g}" for j, op, t in r.conditions))
                       for r in shown), default=10)
        fig = Figure(figsize=(4.0 + 0.065 * longest, 0.38 * len(shown) + 1.5), layout="constrained")
        ax = fig.add_subplot()
        cmap = colormaps["tab10"]
        pos = np.arange(len(shown))[::-1]
        ax.barh(pos, [100 * r.support for r in shown], height=0.7,
                color=[cmap(r.prediction % 10) for r in shown])
        labels = [" ∧ ".join(f"{self.feature_names[j]} {op} {t:.3g}" for j, op, t in r.conditions)
                  + f" ⇒ {r.class_name}" for r in shown]
        ax.set_yticks(pos, labels, fontsize=8)
        for p, r in zip(pos, shown):
            ax.text(100 * r.support, p, f" {100 * r.confidence:.0f}%", va="center", fontsize=7)
        from matplotlib.patches import Patch

        seen = sorted({r.prediction for r in shown})
        ax.legend(handles=[Patch(color=cmap(c % 10), label=self.class_names.get(c, str(c))) for c in seen],
                  loc="lower right", fontsize=8, frameon=False)
        ax.set_xlim(0, 115 * max(r.support for r in shown) if shown else 100)
        ax.set_xlabel("support (% of rows) · number: confidence")
        fig.suptitle("rules of the surrogate tree" + (
            "" if self.fidelity is None else f" · fidelity {100 * self.fidelity:.1f}%"))
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        return fig


def _paths(tree: Any) -> list[tuple[int, list[tuple[int, str, float]]]]:
    t = tree.tree_
    out, stack = [], [(0, [])]
    while stack:
        node, path = stack.pop()
        if t.children_left[node] == -1:
            out.append((node, path))
            continue
        f, thr = int(t.feature[node]), float(t.threshold[node])
        stack.append((int(t.children_right[node]), path + [(f, ">", thr)]))
        stack.append((int(t.children_left[node]), path + [(f, "<=", thr)]))
    return out


def _merge(path: list[tuple[int, str, float]]) -> tuple[tuple[int, str, float], ...]:
    """Tests on one feature merged to the tightest bounds, in order of first appearance."""
    upper: dict[int, float] = {}
    lower: dict[int, float] = {}
    order: list[int] = []
    for f, op, t in path:
        if f not in order:
            order.append(f)
        if op == "<=":
            upper[f] = min(t, upper.get(f, np.inf))
        else:
            lower[f] = max(t, lower.get(f, -np.inf))
    merged = []
    for f in order:
        if f in lower:
            merged.append((f, ">", lower[f]))
        if f in upper:
            merged.append((f, "<=", upper[f]))
    return tuple(merged)


def rules(surrogate: SurrogateTree, data: Any = None, *, model: Any = None) -> Rules:
    """The IF–THEN rules of a :class:`SurrogateTree`, with support and confidence.

    Options:
        data: rows to measure support and confidence on (default: the rows the tree was fit on,
            with the model's predictions it was fit to). With ``data``, ``model`` must be given
            too, to know its predictions there.
        model: the explained model (needed only with ``data``).

    Example:
        >>> import torch
        >>> from pellucid.simplify import surrogate_tree
        >>> s = surrogate_tree(torch.nn.Linear(2, 2), torch.randn(300, 2), max_depth=2)
        >>> r = rules(s)
        >>> bool((r.predict(s.x_train) == s.predict(s.x_train)).all())
        True
    """
    if not isinstance(surrogate, SurrogateTree):
        raise InputError(f"rules() takes the result of surrogate_tree(); got {type(surrogate).__name__}")
    if data is None:
        x, pred = surrogate.x_train, surrogate.y_train
    else:
        if model is None:
            raise InputError("rules(surrogate, data) needs model= to know the model's predictions on data")
        m = wrap(model)
        xt, _ = split_data(m, data)
        x, pred = _rows(xt), classes(predict(m, xt)).cpu().numpy()
    tree = surrogate.tree
    names = dict(zip((int(c) for c in tree.classes_), surrogate.class_names))
    value = tree.tree_.value
    out = []
    for leaf, path in _paths(tree):
        cls = int(tree.classes_[int(np.argmax(value[leaf][0]))])
        rule = Rule(_merge(path), cls, 0.0, 0.0, 0, tuple(surrogate.feature_names), names.get(cls, str(cls)))
        mask = rule.holds(x)
        n = int(mask.sum())
        conf = float((pred[mask] == cls).mean()) if n else float("nan")
        out.append(Rule(rule.conditions, cls, n / len(x), conf, n, rule.feature_names, rule.class_name))
    out.sort(key=lambda r: -r.support)
    return Rules(out, list(surrogate.feature_names), names, surrogate.fidelity)
