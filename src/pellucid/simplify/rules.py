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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._data import feature_rows

__all__ = ["Rule", "Rules", "tree_rules"]


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
        x = feature_rows(inputs).astype(np.float64)
        ok = np.ones(len(x), dtype=bool)
        for j, op, t in self.conditions:
            ok &= (x[:, j] <= t) if op == "<=" else (x[:, j] > t)
        return ok

    def describe(self, *, joiner: str = " AND ", digits: int = 4) -> str:
        """The conditions as text, ``"always"`` for a rule without any (a tree of one leaf)."""
        names = self.feature_names or tuple(
            f"x{j}" for j in range(1 + max((c[0] for c in self.conditions), default=0)))
        return joiner.join(f"{names[j]} {op} {t:.{digits}g}" for j, op, t in self.conditions) or "always"

    def __str__(self) -> str:
        return (f"IF {self.describe()} THEN {self.class_name or self.prediction} "
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
        x = feature_rows(inputs)
        out = np.full(len(x), -1, dtype=np.int64)
        for r in self.rules:
            out[r.holds(x)] = r.prediction
        return out

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rules as plain data: conditions by feature name, prediction, support, confidence."""
        return [{"conditions": [(self.feature_names[j], op, t) for j, op, t in r.conditions],
                 "prediction": r.prediction, "class": r.class_name, "support": r.support,
                 "confidence": r.confidence, "rows": r.rows} for r in self.rules]

    def table(self) -> list[dict[str, Any]]:
        """One row per rule: its number, ``if`` (the conditions as text), ``then`` (the class),
        ``support``, ``confidence`` and ``rows``."""
        return [{"rule": i + 1, "if": r.describe(), "then": r.class_name or str(r.prediction),
                 "support": r.support, "confidence": r.confidence, "rows": r.rows}
                for i, r in enumerate(self.rules)]

    def __str__(self) -> str:
        head = f"{len(self.rules)} rules" + (
            "" if self.fidelity is None else f" (fidelity of the tree: {100 * self.fidelity:.2f}%)")
        return head + "\n" + "\n".join(str(r) for r in self.rules)

    def __repr__(self) -> str:
        return f"Rules(n={len(self.rules)}, fidelity={self.fidelity})"

    def plot(self, **kwargs: Any) -> Any:
        """One bar per rule (its support), coloured by class (see :func:`pellucid.plot.simplify.rules`)."""
        from ..plot import simplify as _plots

        return _plots.rules(self, **kwargs)


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


def tree_rules(tree: Any, x: np.ndarray, predictions: np.ndarray, feature_names: Sequence[str],
               class_names: dict[int, str], fidelity: float | None = None) -> Rules:
    """One :class:`Rule` per leaf of a fitted scikit-learn ``tree``, with its support and
    confidence on the rows ``x`` (2-D, as the tree was fit) where the model predicts
    ``predictions``; largest support first."""
    value = tree.tree_.value
    names = tuple(feature_names)
    out = []
    for leaf, path in _paths(tree):
        cls = int(tree.classes_[int(np.argmax(value[leaf][0]))])
        rule = Rule(_merge(path), cls, 0.0, 0.0, 0, names, class_names.get(cls, str(cls)))
        mask = rule.holds(x)
        n = int(mask.sum())
        conf = float((predictions[mask] == cls).mean()) if n else float("nan")
        out.append(Rule(rule.conditions, cls, n / len(x), conf, n, names, rule.class_name))
    out.sort(key=lambda r: -r.support)
    return Rules(out, list(names), class_names, fidelity)
