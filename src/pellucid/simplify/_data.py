"""Reading the data sets of :mod:`pellucid.simplify`: rows and labels, hold-out splits, feature rows.

``data`` everywhere is the inputs alone (a tensor, array or frame) or a pair ``(inputs, labels)``;
an object with ``x`` and ``y`` attributes (``pellucid.zoo.planted_tabular``) counts as a pair.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._common import check_fraction
from ..errors import InputError
from ..model import Model

__all__ = ["split_data", "holdout", "train_and_test", "feature_rows", "feature_names_for"]


def split_data(model: Model, data: Any, *, name: str = "data", need_labels: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(inputs, labels or None)`` from ``data``, checked and on the model's device."""
    if data is None:
        raise InputError(f"{name} is required here: pass the inputs, or a pair (inputs, labels)")
    if hasattr(data, "x") and hasattr(data, "y") and not isinstance(data, torch.Tensor):
        data = (data.x, data.y)
    labels = None
    if isinstance(data, (tuple, list)) and len(data) == 2 and not _is_row_list(data):
        data, labels = data
    x = model.prepare(data, name=f"{name} inputs")
    y = None
    if labels is not None:
        y = torch.as_tensor(labels.to_numpy() if hasattr(labels, "to_numpy") else labels)
        if y.is_floating_point() or y.dim() != 1 or len(y) != len(x):
            raise InputError(
                f"{name} labels must be one integer class per input row ({len(x)} rows); got "
                f"{'dtype ' + str(y.dtype) if y.is_floating_point() else 'shape ' + str(tuple(y.shape))}"
            )
        y = y.long().to(x.device)
    if need_labels and y is None:
        raise InputError(f"{name} must be labelled here: pass a pair (inputs, labels)")
    return x, y


def _is_row_list(data: Any) -> bool:
    # Two plain rows of numbers ([[1, 2], [3, 4]]) are inputs, not an (inputs, labels) pair.
    return isinstance(data, list) and all(isinstance(r, (list, tuple)) for r in data)


def holdout(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ``(train index, held-out index)`` with ``round(fraction * n)`` rows held out."""
    fraction = check_fraction(fraction, "holdout", closed=False)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = max(1, min(n - 1, round(fraction * n)))
    return perm[k:], perm[:k]


def train_and_test(model: Model, data: Any, test: Any, fraction: float, seed: int):
    """``(x, y, x_test, y_test)``: ``test`` when given, else a seeded hold-out of ``data``."""
    x, y = split_data(model, data)
    if test is not None:
        x_test, y_test = split_data(model, test, name="test")
        return x, y, x_test, y_test
    tr, te = holdout(len(x), fraction, seed)
    return x[tr], (None if y is None else y[tr]), x[te], (None if y is None else y[te])


def feature_rows(inputs: Any) -> np.ndarray:
    """Rows as a float32 2-D numpy array, one column per input element: what scikit-learn's trees
    fit and compare in (images are flattened)."""
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu().numpy()
    elif hasattr(inputs, "to_numpy"):
        inputs = inputs.to_numpy()
    arr = np.asarray(inputs, dtype=np.float32)
    return arr.reshape(len(arr), -1)


def feature_names_for(n_features: int, names: Sequence[str] | None) -> list[str]:
    """``names`` as strings, checked against the number of features (default ``x0, x1, …``)."""
    if names is None:
        return [f"x{j}" for j in range(n_features)]
    out = [str(f) for f in names]
    if len(out) != n_features:
        raise InputError(f"{len(out)} feature_names given for {n_features} features")
    return out
