"""How the units of a layer behave over a data set: dead ReLUs, saturated sigmoids, spread.

For each layer, streaming over the data in batches (so any data set size fits in memory):

- ``dead_fraction``: share of units never positive on any row or position (``max a ≤ 0``). For a
  ReLU such a unit passes no signal and gets no gradient: it is dead.
- ``saturated_fraction``: share of pre-activations beyond the linear zone of a sigmoid
  (``|z| > 4``: σ' < 0.018, under a fourteenth of its peak) or tanh (``|z| > 2``: tanh' < 0.071),
  where gradients vanish; NaN for other activations.
- ``positive_fraction``: share of outputs above 0 (how often units fire).
- ``mean``/``std``: of the pre-activations (the activation module's input), over all values.

A *unit* is an index along ``unit_axis`` (default 1: a neuron of a linear layer, a channel of a
convolution; pass ``-1`` for the features of a ``(n, tokens, d)`` transformer activation). With
``layers=None`` every activation module (ReLU, LeakyReLU, ReLU6, ELU, GELU, SiLU, Sigmoid, Tanh,
...) is analysed; a named layer that is not an activation is read as a pre-activation (its
output ``z``), and "dead" then means ``z`` is never positive — a ReLU after it would be dead.

Cost: one forward pass over the data, no backward. Reference: Glorot & Bengio 2010 ("Understanding
the difficulty of training deep feedforward networks") for saturation; Lu et al. 2019 ("Dying
ReLU and Initialization") for dead units.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .._common import progress_bar
from .._hooks import Site, find_layer, first_tensor, hooks
from .._table import text_table
from ..adapters import wrap
from ..errors import InputError, LayerError
from ..model import Model
from .activations import resolve_layers

__all__ = ["activation_stats", "ActivationStats", "LayerStats", "ACTIVATIONS", "SATURATION"]

#: Activation modules found by ``layers=None``, and the kind each is reported as.
ACTIVATIONS: dict[type, str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu", nn.LeakyReLU: "relu", nn.RReLU: "relu", nn.PReLU: "relu",
    nn.ELU: "relu", nn.SELU: "relu", nn.CELU: "relu", nn.GELU: "relu", nn.SiLU: "relu",
    nn.Mish: "relu", nn.Softplus: "relu", nn.Hardswish: "relu",
    nn.Sigmoid: "sigmoid", nn.Hardsigmoid: "sigmoid", nn.LogSigmoid: "sigmoid",
    nn.Tanh: "tanh", nn.Hardtanh: "tanh", nn.Softsign: "tanh",
}
#: |pre-activation| beyond which a sigmoid- or tanh-like unit counts as saturated.
SATURATION = {"sigmoid": 4.0, "tanh": 2.0}
_HIST_RANGE, _HIST_BINS = 6.0, 60


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


_FORMATS = {"dead": _percent, "saturated": _percent, "positive": _percent,
            "mean": "{:+.3g}".format, "std": "{:.3g}".format}


@dataclasses.dataclass
class LayerStats:
    """Statistics of one layer over a data set (see the module docstring for each figure)."""

    name: str
    module: str  # the module's class name
    kind: str  # "relu", "sigmoid", "tanh" or "other"
    units: int
    values: int  # pre-activation values seen
    dead_fraction: float
    saturated_fraction: float
    positive_fraction: float
    mean: float
    std: float
    dead: torch.Tensor  # (units,) bool
    unit_mean: torch.Tensor  # (units,) mean pre-activation per unit
    unit_std: torch.Tensor
    histogram: torch.Tensor  # counts of pre-activations in bins over [-6, 6] (ends clipped)
    bin_edges: torch.Tensor


@dataclasses.dataclass
class ActivationStats:
    """Per-layer :class:`LayerStats`, in the model's order; prints as a table, ``.plot()`` draws."""

    layers: dict[str, LayerStats]
    rows: int

    COLUMNS = ("layer", "module", "units", "dead", "saturated", "positive", "mean", "std")

    def table(self) -> list[dict[str, Any]]:
        """One dict per layer with the columns of :attr:`COLUMNS`."""
        return [
            {"layer": s.name, "module": s.module, "units": s.units, "dead": s.dead_fraction,
             "saturated": s.saturated_fraction, "positive": s.positive_fraction,
             "mean": s.mean, "std": s.std}
            for s in self.layers.values()
        ]

    def to_frame(self):
        """The table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.table()).set_index("layer")

    def __getitem__(self, name: str) -> LayerStats:
        return self.layers[name]

    def __str__(self) -> str:
        return text_table(self.table(), self.COLUMNS, formats=_FORMATS,
                          title=f"activation statistics over {self.rows} rows")

    __repr__ = __str__

    def plot(self, **kwargs: Any):
        """:func:`pellucid.plot.activation_stats` of these statistics."""
        from ..plot import features as _plots

        return _plots.activation_stats(self, **kwargs)


class _Running:
    """Streaming sums for one layer (float64, so millions of values add up exactly enough)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.count = 0
        self.values = 0
        self.sum = self.sumsq = self.ever_positive = None
        self.positive = 0
        self.saturated = 0
        self.hist = torch.zeros(_HIST_BINS, dtype=torch.float64)

    def add(self, pre: torch.Tensor, post: torch.Tensor, axis: int, name: str) -> None:
        if pre.dim() < 2:
            raise LayerError(
                f"layer {name!r} gives outputs shaped {tuple(pre.shape)}; expected (n, units, ...)")
        ax = axis % pre.dim()
        if ax == 0:
            raise InputError("unit_axis must not be the batch axis 0")
        z = pre.detach().movedim(ax, -1).reshape(-1, pre.shape[ax]).double()
        a = post.detach().movedim(ax % post.dim(), -1).reshape(-1, post.shape[ax % post.dim()])
        if self.sum is None:
            units = z.shape[1]
            self.sum = torch.zeros(units, dtype=torch.float64, device=z.device)
            self.sumsq = torch.zeros_like(self.sum)
            self.ever_positive = torch.zeros(units, dtype=torch.bool, device=z.device)
        elif z.shape[1] != len(self.sum):
            raise LayerError(f"layer {name!r} changed its number of units between batches")
        self.count += z.shape[0]
        self.values += z.numel()
        self.sum += z.sum(0)
        self.sumsq += (z * z).sum(0)
        fired = a > 0
        self.ever_positive |= fired.any(0)
        self.positive += int(fired.sum())
        if self.kind in SATURATION:
            self.saturated += int((z.abs() > SATURATION[self.kind]).sum())
        self.hist += torch.histc(z.clamp(-_HIST_RANGE, _HIST_RANGE).cpu(), _HIST_BINS,
                                 -_HIST_RANGE, _HIST_RANGE)

    def result(self, name: str, module: nn.Module) -> LayerStats:
        mean_u = self.sum / self.count
        var_u = (self.sumsq / self.count - mean_u ** 2).clamp_min(0)
        mean = float(self.sum.sum() / self.values)
        var = max(0.0, float(self.sumsq.sum() / self.values) - mean ** 2)
        dead = ~self.ever_positive.cpu()
        return LayerStats(
            name=name, module=type(module).__name__, kind=self.kind, units=len(dead),
            values=self.values, dead_fraction=int(dead.sum()) / len(dead),
            saturated_fraction=(self.saturated / self.values if self.kind in SATURATION
                                else float("nan")),
            positive_fraction=self.positive / self.values, mean=mean, std=math.sqrt(var),
            dead=dead, unit_mean=mean_u.cpu(), unit_std=var_u.sqrt().cpu(), histogram=self.hist,
            bin_edges=torch.linspace(-_HIST_RANGE, _HIST_RANGE, _HIST_BINS + 1),
        )


#: Class-name fragments of activation modules from other libraries (Hugging Face's
#: ``GELUActivation``, timm's ``Swish``, ...), checked after :data:`ACTIVATIONS`.
_NAMED = (("sigmoid", "sigmoid"), ("tanh", "tanh"), ("gelu", "relu"), ("relu", "relu"),
          ("silu", "relu"), ("swish", "relu"), ("mish", "relu"))


def _kind(module: nn.Module) -> str:
    for cls in type(module).__mro__:
        if cls in ACTIVATIONS:
            return ACTIVATIONS[cls]
    name = type(module).__name__.lower()
    if isinstance(module, nn.Module) and not any(True for _ in module.children()):
        for fragment, kind in _NAMED:
            if fragment in name:
                return kind
    return "other"


def _batches(m: Model, data: Any, batch_size: int | None, progress: bool | None) -> Iterable[torch.Tensor]:
    """Tensors of rows: chunks of one array, or of each item of an iterable (first of a tuple)."""
    single = isinstance(data, (torch.Tensor, np.ndarray)) or hasattr(data, "to_numpy")
    if not single and not isinstance(data, Iterable):
        raise InputError(
            f"data must be a tensor, an array or an iterable of batches; got {type(data).__name__}")
    for batch in [data] if single else progress_bar(data, progress, "activation_stats", unit="batch"):
        if isinstance(batch, (tuple, list)) and not single:
            batch = batch[0]
        elif isinstance(batch, dict):
            raise InputError("data batches must be tensors or (inputs, labels) tuples, not dicts")
        x = m.prepare(batch, name="data" if single else "a batch of data")
        for rows, _ in m.chunks(len(x), x.shape[1:], batch_size=batch_size,
                                progress=progress if single else False, desc="activation_stats"):
            yield x[rows]


def _layers(m: Model, layers: Any) -> list[str]:
    """The layer keys to analyse: ``layers`` resolved, or every activation module."""
    if layers is not None:
        return resolve_layers(m, layers)
    keys = [name for name, mod in m.module.named_modules() if name and _kind(mod) != "other"]
    if not keys:
        raise LayerError(
            f"{m.name} has no activation modules (nn.ReLU, nn.Sigmoid, ...); activations "
            "called as functions cannot be hooked. Name the layers before them with layers=")
    return keys


def activation_stats(
    model: Any,
    data: Any,
    *,
    layers: str | nn.Module | Sequence[str | nn.Module] | None = None,
    unit_axis: int = 1,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> ActivationStats:
    """Dead, saturated and firing units and pre-activation spread of layers over ``data``.

    ``data`` is a tensor/array of rows (run in chunks of ``batch_size``) or any iterable of
    batches, e.g. a ``DataLoader`` (a tuple batch is read at its first item): nothing but running
    sums is kept, so the data set may be of any size. ``layers`` names layers or call sites
    ``"name@k"`` (the ``k``-th call of a module that runs several times per forward pass); a
    reused module named without a call site is refused, with its call sites named, since pooling
    its calls would mix different pre-activations. ``layers=None`` takes every activation module
    (see :data:`ACTIVATIONS`), a reused one as one entry per call site (``"layer1.0.relu@0"``,
    ``"layer1.0.relu@1"``). Returns :class:`ActivationStats` (``print`` it for a table,
    ``.to_frame()`` for pandas, ``.plot()`` for bars and histograms).

    Example:
        >>> import torch, pellucid
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
        >>> stats = pellucid.features.activation_stats(net, torch.randn(100, 3))
        >>> list(stats.layers)
        ['1']
    """
    m = wrap(model, batch_size=batch_size)
    if m.module is None:
        raise LayerError(f"{m.name} is not a torch module, so it has no layers to analyse")
    keys = _layers(m, layers)
    modules = {key: find_layer(m, key)[0] for key in keys}
    kinds = {key: _kind(mod) for key, mod in modules.items()}
    running: dict[tuple[str, int], _Running] = {}
    stash: dict[tuple[str, int], torch.Tensor] = {}

    def before(site: Site, args: Any) -> None:
        if args and isinstance(args[0], torch.Tensor):  # an in-place activation overwrites it
            inplace = bool(getattr(site.module, "inplace", False))
            stash[site.name, site.call] = args[0].clone() if inplace else args[0]

    def after(site: Site, output: Any) -> None:
        out = first_tensor(output, site.name)
        pre = stash.pop((site.name, site.call), out)
        if (site.name, site.call) not in running:
            running[site.name, site.call] = _Running(kinds[site.name])
        running[site.name, site.call].add(pre, out, unit_axis, site.name)

    rows = 0
    with m.explaining(), torch.no_grad(), \
            hooks(m, {k: before for k in keys if kinds[k] != "other"}, pre=True) as pre_run, \
            hooks(m, {k: after for k in keys}) as run:
        for x in _batches(m, data, batch_size, progress):
            pre_run.reset()
            run.reset()
            m.forward(x)
            rows += len(x)
            if layers is not None:
                for key in keys:  # refuses a reused module's plain name, or a call site not reached
                    if run.calls(key):
                        run.check_once(key)
    if rows == 0:
        raise InputError("data holds no rows")
    found: dict[str, LayerStats] = {}
    for key in keys:
        calls = sorted(call for name, call in running if name == key)
        if not calls:
            raise LayerError(f"layer {key!r} did not run on the data, so it has no statistics")
        for call in calls:
            name = key if len(calls) == 1 else f"{key}@{call}"
            found[name] = running[key, call].result(name, modules[key])
    return ActivationStats(found, rows)
