"""A decision tree that imitates the model: a global surrogate a person can read.

The tree is fit with scikit-learn's CART (``DecisionTreeClassifier``) to the *model's own
predictions* ``argmax f(x)`` on ``data`` — not to the labels — so it explains the model, mistakes
included. How far it can be trusted is its fidelity: the share of held-out rows on which tree and
model predict the same class (Craven & Shavlik 1996, "Extracting Tree-Structured Representations
of Trained Networks"; Molnar, "Interpretable Machine Learning", §8.6 global surrogates). Inputs
with more than one dimension per row (images) are flattened, one feature per element.

Cost: one forward pass of the model over ``data`` (and ``test``), plus a CART fit:
``O(d · n log n · depth)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..adapters import wrap
from ._common import classes, predict, train_and_test

__all__ = ["SurrogateTree", "surrogate_tree"]


@dataclass(eq=False)
class SurrogateTree:
    """A fitted surrogate: ``tree`` (scikit-learn), its ``fidelity`` on held-out rows, and names.

    ``train_fidelity`` is the agreement on the rows it was fit on; ``accuracy`` and
    ``model_accuracy`` are the tree's and the model's accuracy on held-out labels (when given).
    ``x_train`` / ``y_train`` keep the rows and the model's predictions it was fit on (for rule
    support and confidence).
    """

    tree: Any
    fidelity: float
    train_fidelity: float
    feature_names: list[str]
    class_names: list[str]
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    accuracy: float | None = None
    model_accuracy: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return int(self.tree.get_depth())

    @property
    def leaves(self) -> int:
        return int(self.tree.get_n_leaves())

    def predict(self, inputs: Any) -> np.ndarray:
        """The tree's class (an index into the model's outputs) for each row."""
        return self.tree.predict(_rows(inputs)).astype(np.int64)

    def rules(self, data: Any = None) -> Any:
        """The tree as IF–THEN rules (see :func:`pellucid.simplify.rules`)."""
        from .rules import rules

        return rules(self, data)

    def __str__(self) -> str:
        from sklearn.tree import export_text

        return (
            f"surrogate tree: depth {self.depth}, {self.leaves} leaves, fidelity {100 * self.fidelity:.2f}% "
            f"on held-out rows ({100 * self.train_fidelity:.2f}% on training rows)\n"
            + export_text(self.tree, feature_names=self.feature_names, decimals=3)
        )

    def __repr__(self) -> str:
        return f"SurrogateTree(depth={self.depth}, leaves={self.leaves}, fidelity={self.fidelity:.4f})"

    def plot(self, *, fontsize: float | None = None) -> Any:
        """The tree drawn by ``sklearn.tree.plot_tree`` on a matplotlib ``Figure``."""
        from matplotlib.figure import Figure
        from sklearn.tree import plot_tree

        width = max(6.0, min(24.0, 1.6 * self.leaves))
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = Figure(figsize=(width, 1.6 * (self.depth + 1) + 0.6), layout="constrained")
        FigureCanvasAgg(fig)  # plot_tree measures text, which needs a canvas with a renderer
        ax = fig.add_subplot()
        plot_tree(self.tree, feature_names=self.feature_names, class_names=self.class_names,
                  filled=True, impurity=False, proportion=True, rounded=True, ax=ax, fontsize=fontsize)
        ax.set_title(f"surrogate tree · fidelity {100 * self.fidelity:.1f}%")
        return fig


def _rows(inputs: Any) -> np.ndarray:
    """Rows as a float32 2-D numpy array, which is what scikit-learn's trees compare in."""
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu().numpy()
    elif hasattr(inputs, "to_numpy"):
        inputs = inputs.to_numpy()
    arr = np.asarray(inputs, dtype=np.float32)
    return arr.reshape(len(arr), -1)


def names_for(n_features: int, feature_names: Sequence[str] | None) -> list[str]:
    if feature_names is None:
        return [f"x{j}" for j in range(n_features)]
    names = [str(f) for f in feature_names]
    if len(names) != n_features:
        raise InputError(f"{len(names)} feature_names given for {n_features} features")
    return names


def surrogate_tree(
    model: Any,
    data: Any,
    *,
    max_depth: int | None = 4,
    min_samples_leaf: int = 1,
    test: Any = None,
    holdout: float = 0.25,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> SurrogateTree:
    """Fit a decision tree to the model's predictions on ``data``; fidelity on held-out rows.

    Options:
        data: inputs, or ``(inputs, labels)`` (labels only add accuracies to the result).
        max_depth: the tree's depth limit (default 4: about 16 rules a person can still read).
        min_samples_leaf: fewest training rows in a leaf (default 1).
        test: held-out inputs (or pair) for the fidelity; default: a seeded ``holdout`` share
            (0.25) of ``data`` is kept out of the fit.
        feature_names, class_names: for printing and drawing (default ``x0..``, ``class 0..``).
        seed: the split and the tree's tie-breaking.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(3, 2)
        >>> s = surrogate_tree(net, torch.randn(400, 3), max_depth=3)
        >>> s.depth <= 3 and 0.0 <= s.fidelity <= 1.0
        True
    """
    from sklearn.tree import DecisionTreeClassifier

    if max_depth is not None and (isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1):
        raise InputError(f"max_depth must be a positive integer or None, got {max_depth!r}")
    m = wrap(model)
    x, y, x_test, y_test = train_and_test(m, data, test, holdout, seed)
    out_train = predict(m, x, batch_size=batch_size)
    p_train = classes(out_train).cpu().numpy()
    p_test = classes(predict(m, x_test, batch_size=batch_size)).cpu().numpy()
    xa, xt = _rows(x), _rows(x_test)
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=min_samples_leaf, random_state=seed)
    tree.fit(xa, p_train)
    k = max(2, out_train.shape[1])
    cnames = [f"class {c}" for c in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(cnames) != k:
        raise InputError(f"{len(cnames)} class_names given for a model with {k} classes")
    result = SurrogateTree(
        tree=tree,
        fidelity=float((tree.predict(xt) == p_test).mean()),
        train_fidelity=float((tree.predict(xa) == p_train).mean()),
        feature_names=names_for(xa.shape[1], feature_names),
        class_names=[cnames[int(c)] for c in tree.classes_],
        x_train=xa, y_train=p_train,
        params={"max_depth": max_depth, "min_samples_leaf": min_samples_leaf, "seed": seed,
                "holdout": None if test is not None else holdout},
    )
    if y_test is not None:
        yt = y_test.cpu().numpy()
        result.accuracy = float((tree.predict(xt) == yt).mean())
        result.model_accuracy = float((p_test == yt).mean())
    return result
