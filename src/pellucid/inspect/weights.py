"""``inspect.weights``: statistics and histograms of every parameter tensor.

Per tensor: shape, count, mean, standard deviation, min, max, mean |w|, L2 norm, the fraction of
exact zeros (what pruning leaves) and a histogram with ``bins`` equal-width bins between the
tensor's min and max. Shared parameters are listed once. Nothing is copied off the device except
the statistics themselves; cost is one pass over the parameters.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .._common import check_positive_int
from .._table import text_table
from ..errors import LayerError, ModelError

__all__ = ["weights", "Weights", "TensorStats"]


@dataclasses.dataclass
class TensorStats:
    """Statistics of one parameter tensor; ``counts`` over ``edges`` is its histogram."""

    name: str
    shape: tuple[int, ...]
    numel: int
    mean: float
    std: float
    min: float
    max: float
    abs_mean: float
    norm: float
    zero_fraction: float
    trainable: bool
    counts: np.ndarray
    edges: np.ndarray


_COLUMNS = ("name", "shape", "numel", "mean", "std", "min", "max", "abs_mean", "norm", "zero_fraction")


@dataclasses.dataclass
class Weights:
    """The result of :func:`weights`: one :class:`TensorStats` per parameter tensor."""

    model: str
    tensors: list[TensorStats]

    def table(self) -> list[dict[str, Any]]:
        """One dictionary per tensor with the columns of the printed table."""
        return [{c: getattr(t, c) for c in _COLUMNS} for t in self.tensors]

    def __getitem__(self, name: str) -> TensorStats:
        for t in self.tensors:
            if t.name == name:
                return t
        raise LayerError(f"no parameter named {name!r}; there are {[t.name for t in self.tensors]}")

    def __str__(self) -> str:
        return text_table(
            self.table(), ("name", "shape", "numel", "mean", "std", "min", "max", "zero_fraction"),
            headers={"name": "parameter", "numel": "count", "zero_fraction": "zeros"},
            formats={"numel": "{:,}".format, "mean": "{:+.3g}".format, "std": "{:.3g}".format,
                     "min": "{:+.3g}".format, "max": "{:+.3g}".format, "zero_fraction": "{:.1%}".format},
            title=self.model,
        )

    def plot(self, **kwargs: Any) -> Any:
        """A grid of histograms, one per tensor, with mean ± std in each title (``columns=4``,
        ``log=False``; :func:`pellucid.plot.inspect.weight_histograms`)."""
        from ..plot import inspect as _plots

        return _plots.weight_histograms(self, **kwargs)


def weights(model: nn.Module, *, bins: int = 50) -> Weights:
    """Per-tensor statistics and histograms of ``model``'s parameters.

    Example:
        >>> import torch
        >>> w = weights(torch.nn.Linear(3, 2), bins=10)
        >>> [t.name for t in w.tensors], int(w["weight"].counts.sum())
        (['weight', 'bias'], 6)
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"weights needs a torch.nn.Module, got {type(model).__name__}")
    bins = check_positive_int(bins, "bins")
    return Weights(type(model).__name__, [_stats(name, p, bins) for name, p in model.named_parameters()])


def _stats(name: str, p: torch.Tensor, bins: int) -> TensorStats:
    with torch.no_grad():
        w = p.detach().double().flatten()
        if w.numel() == 0:
            return TensorStats(name, tuple(p.shape), 0, *(math.nan,) * 6, 0.0, p.requires_grad,
                               np.zeros(bins, dtype=np.int64), np.linspace(0, 1, bins + 1))
        lo, hi = float(w.min()), float(w.max())
        if lo == hi:  # a constant tensor: one bin around the value
            lo, hi = lo - 0.5, hi + 0.5
        counts = torch.histc(w, bins=bins, min=lo, max=hi).round().long().cpu().numpy()
        return TensorStats(
            name=name, shape=tuple(p.shape), numel=w.numel(), mean=float(w.mean()),
            std=float(w.std()) if w.numel() > 1 else 0.0, min=float(w.min()), max=float(w.max()),
            abs_mean=float(w.abs().mean()), norm=float(w.norm()),
            zero_fraction=float((w == 0).double().mean()), trainable=p.requires_grad,
            counts=counts, edges=np.linspace(lo, hi, bins + 1),
        )
