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
from matplotlib.figure import Figure
from torch import nn

from ..errors import InputError, ModelError

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
        raise KeyError(f"no parameter named {name!r}; there are {[t.name for t in self.tensors]}")

    def __str__(self) -> str:
        rows = [(t.name, "x".join(map(str, t.shape)), f"{t.numel:,}", f"{t.mean:+.3g}",
                 f"{t.std:.3g}", f"{t.min:+.3g}", f"{t.max:+.3g}", f"{t.zero_fraction:.1%}")
                for t in self.tensors]
        head = ("parameter", "shape", "count", "mean", "std", "min", "max", "zeros")
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
        fmt = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                      for i, (c, w) in enumerate(zip(cells, widths)))
        return "\n".join([self.model, fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])

    def plot(self, *, columns: int = 4, log: bool = False) -> Figure:
        """A grid of histograms, one per tensor, with mean ± std in each title."""
        n = len(self.tensors)
        cols = max(1, min(columns, n))
        rows = max(1, math.ceil(n / cols))
        fig = Figure(figsize=(3.2 * cols, 2.3 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, t in zip(axes.flat, self.tensors):
            widths = np.diff(t.edges)
            ax.bar(t.edges[:-1], t.counts, width=widths, align="edge", color="#4393c3",
                   edgecolor="none", log=log)
            ax.axvline(0.0, color="0.3", linewidth=0.7)
            ax.set_title(f"{t.name}\n{t.mean:+.2g} ± {t.std:.2g}", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.suptitle(f"{self.model}: parameter histograms", fontsize=10)
        return fig


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
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise InputError(f"bins must be a positive integer, got {bins!r}")
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
