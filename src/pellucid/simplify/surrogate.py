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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._common import check_positive_int
from ..adapters import wrap
from ..errors import InputError
from ._data import feature_names_for, feature_rows, split_data, train_and_test
from ._report import recorded
from ._training import classes, predict
from .rules import Rules, tree_rules

__all__ = ["SurrogateTree", "surrogate_tree", "rules"]


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
        return self.tree.predict(feature_rows(inputs)).astype(np.int64)

    def rules(self, data: Any = None, *, model: Any = None) -> Rules:
        """The tree as IF–THEN rules, with support and confidence (see :func:`rules`)."""
        if data is None:
            x, pred = self.x_train, self.y_train
        else:
            if model is None:
                raise InputError("rules(surrogate, data) needs model= to know the model's "
                                 "predictions on data")
            m = wrap(model)
            xt, _ = split_data(m, data)
            x, pred = feature_rows(xt), classes(predict(m, xt)).cpu().numpy()
        names = dict(zip((int(c) for c in self.tree.classes_), self.class_names))
        return tree_rules(self.tree, x, pred, self.feature_names, names, self.fidelity)

    def table(self) -> list[dict[str, Any]]:
        """The tree's rules, one row per leaf (see :meth:`Rules.table`)."""
        return self.rules().table()

    def __str__(self) -> str:
        from sklearn.tree import export_text

        return (
            f"surrogate tree: depth {self.depth}, {self.leaves} leaves, fidelity {100 * self.fidelity:.2f}% "
            f"on held-out rows ({100 * self.train_fidelity:.2f}% on training rows)\n"
            + export_text(self.tree, feature_names=self.feature_names, decimals=3)
        )

    def __repr__(self) -> str:
        return f"SurrogateTree(depth={self.depth}, leaves={self.leaves}, fidelity={self.fidelity:.4f})"

    def plot(self, **kwargs: Any) -> Any:
        """The tree drawn by ``sklearn.tree.plot_tree`` (see :func:`pellucid.plot.simplify.tree`)."""
        from ..plot import simplify as _plots

        return _plots.tree(self, **kwargs)


@recorded("feature_names", "class_names", "test")
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
    progress: bool | None = None,
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
        batch_size: rows per forward pass of the model.
        progress: a progress bar over the model's forward passes on runs longer than two seconds.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(3, 2)
        >>> s = surrogate_tree(net, torch.randn(400, 3), max_depth=3)
        >>> s.depth <= 3 and 0.0 <= s.fidelity <= 1.0
        True
    """
    from sklearn.tree import DecisionTreeClassifier

    if max_depth is not None:
        max_depth = check_positive_int(max_depth, "max_depth")
    min_samples_leaf = check_positive_int(min_samples_leaf, "min_samples_leaf")
    m = wrap(model)
    x, _, x_test, y_test = train_and_test(m, data, test, holdout, seed)
    out_train = predict(m, x, batch_size=batch_size, progress=progress)
    p_train = classes(out_train).cpu().numpy()
    p_test = classes(predict(m, x_test, batch_size=batch_size, progress=progress)).cpu().numpy()
    xa, xt = feature_rows(x), feature_rows(x_test)
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
        feature_names=feature_names_for(xa.shape[1], feature_names),
        class_names=[cnames[int(c)] for c in tree.classes_],
        x_train=xa, y_train=p_train,
    )
    if y_test is not None:
        yt = y_test.cpu().numpy()
        result.accuracy = float((tree.predict(xt) == yt).mean())
        result.model_accuracy = float((p_test == yt).mean())
    return result


def rules(surrogate: SurrogateTree, data: Any = None, *, model: Any = None) -> Rules:
    """The IF–THEN rules of a :class:`SurrogateTree`, with support and confidence.

    Options:
        data: rows to measure support and confidence on (default: the rows the tree was fit on,
            with the model's predictions it was fit to). With ``data``, ``model`` must be given
            too, to know its predictions there.
        model: the explained model (needed only with ``data``).

    Cost: one forward pass of ``model`` over ``data`` (none without ``data``).

    Example:
        >>> import torch
        >>> s = surrogate_tree(torch.nn.Linear(2, 2), torch.randn(300, 2), max_depth=2)
        >>> r = rules(s)
        >>> bool((r.predict(s.x_train) == s.predict(s.x_train)).all())
        True
    """
    if not isinstance(surrogate, SurrogateTree):
        raise InputError(f"rules() takes the result of surrogate_tree(); got {type(surrogate).__name__}")
    return surrogate.rules(data, model=model)
