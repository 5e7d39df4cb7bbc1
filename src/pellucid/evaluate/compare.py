"""Several explanation methods scored by several metrics: one table, one picture.

``compare`` explains the inputs once per method, all for the same target (resolved once from the
model's prediction when none is given, so every method explains the same class), scores every
explanation with every metric, and returns a :class:`Comparison` holding the per-row
:class:`Score` objects and the table of their means.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import textwrap
from typing import Any, Callable, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..explanation import Explanation
from ..model import select_target
from ..adapters import wrap
from ..registry import explain, get
from ._score import Score

__all__ = ["compare", "Comparison"]


@dataclasses.dataclass
class Comparison:
    """The result of :func:`compare`.

    Attributes:
        table: ``{method label: {metric label: mean score}}`` (NaN rows ignored in the mean).
        scores: ``{method label: {metric label: Score}}``, the per-row scores.
        higher_is_better: ``{metric label: bool}``, the direction each metric improves in.
        explanations: ``{method label: Explanation}``, what was scored (all for one target).
    """

    table: dict[str, dict[str, float]]
    scores: dict[str, dict[str, Score]]
    higher_is_better: dict[str, bool]
    explanations: dict[str, Explanation] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def methods(self) -> list[str]:
        return list(self.table)

    @property
    def metrics(self) -> list[str]:
        return list(self.higher_is_better)

    def ranks(self) -> np.ndarray:
        """``(methods, metrics)`` array in ``[0, 1]``: 1 for the best method of a metric, 0 for
        the worst, whatever the metric's direction (ties share their mean rank; NaN stays NaN)."""
        out = np.full((len(self.methods), len(self.metrics)), np.nan)
        for j, metric in enumerate(self.metrics):
            col = np.array([self.table[m][metric] for m in self.methods], dtype=float)
            good = col if self.higher_is_better[metric] else -col
            ok = np.isfinite(good)
            if ok.sum() == 1:
                out[ok, j] = 1.0
            elif ok.any():
                v = good[ok]
                # average rank of ties: count of values below plus half the equal ones (others)
                r = np.array([(v < a).sum() + ((v == a).sum() - 1) / 2 for a in v])
                out[ok, j] = r / (len(v) - 1)
        return out

    def to_markdown(self, digits: int = 4) -> str:
        """A Markdown table, one row per method; the best value of each metric is in bold."""
        ranks = self.ranks()
        head = ["method"] + [f"{m} {'↑' if self.higher_is_better[m] else '↓'}" for m in self.metrics]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i, method in enumerate(self.methods):
            cells = [method]
            for j, metric in enumerate(self.metrics):
                text = _fmt(self.table[method][metric], digits)
                cells.append(f"**{text}**" if ranks[i, j] == 1.0 else text)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    def plot(self, *, cmap: str = "RdYlGn", digits: int = 3, cell: tuple[float, float] = (1.6, 0.55)
             ) -> Figure:
        """Methods × metrics grid with the mean scores written in the cells.

        Cells are coloured by rank within their metric (``cmap``'s top end, green by default, is
        always the best method, whether the metric rises or falls), so colours compare across
        columns while the numbers keep their own units. Returns a ``Figure`` (no pyplot).
        """
        ranks = self.ranks()
        n, k = ranks.shape
        fig = Figure(figsize=(1.8 + cell[0] * k, 0.9 + cell[1] * n), layout="constrained")
        ax = fig.subplots()
        colormap = matplotlib.colormaps[cmap].with_extremes(bad="#dddddd")  # NaN: grey
        # the ends of the map are too saturated to read text on: leave a margin either side
        image = ax.imshow(np.ma.masked_invalid(ranks), cmap=colormap, vmin=-0.15, vmax=1.15,
                          aspect="auto")
        mapped = image.cmap(image.norm(np.nan_to_num(ranks, nan=0.5)))
        for i, method in enumerate(self.methods):
            for j, metric in enumerate(self.metrics):
                r, g, b, _ = mapped[i, j]
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                best = ranks[i, j] == 1.0
                ax.text(j, i, _fmt(self.table[method][metric], digits), ha="center", va="center",
                        fontsize=10, color="white" if dark else "black",
                        fontweight="bold" if best else "normal")
        ax.set_xticks(range(k), [textwrap.fill(f"{m.replace('_', ' ')} "
                                               f"{'↑' if self.higher_is_better[m] else '↓'}", 16)
                                 for m in self.metrics])
        ax.set_yticks(range(n), [m.replace("_", " ") for m in self.methods])
        ax.xaxis.tick_top()
        ax.tick_params(length=0)
        ax.set_xticks(np.arange(-0.5, k), minor=True)
        ax.set_yticks(np.arange(-0.5, n), minor=True)
        ax.grid(which="minor", color="white", linewidth=2)
        ax.tick_params(which="minor", length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_xlabel("colour: rank within each metric (green = best) · ↑ higher / ↓ lower is better",
                      fontsize=8, color="#555555")
        return fig


def _fmt(value: float, digits: int) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.{digits}g}"


def _pairs(spec: Any, what: str) -> list[tuple[str, str | Callable[..., Any], dict[str, Any]]]:
    """``[(label, name or function, params)]`` from a list of names / (name, params) pairs or a
    mapping ``{label: name or (name, params)}``."""
    if isinstance(spec, (str, tuple)) or callable(spec):
        spec = [spec]
    items = spec.items() if isinstance(spec, Mapping) else [(None, s) for s in spec]
    out, seen = [], set()
    for label, entry in items:
        if isinstance(entry, tuple):
            if len(entry) != 2 or not isinstance(entry[1], Mapping):
                raise ValueError(f"each of {what} is a name or a (name, params dict) pair; got {entry!r}")
            name, params = entry[0], dict(entry[1])
        else:
            name, params = entry, {}
        if label is None:
            label = name if isinstance(name, str) else getattr(name, "__name__", repr(name))
        label = str(label)
        if label in seen:
            raise ValueError(
                f"{what} lists {label!r} twice; give a dict {{label: (name, params)}} to tell the "
                "entries apart"
            )
        seen.add(label)
        out.append((label, name, params))
    if not out:
        raise ValueError(f"compare() needs at least one entry in {what}")
    return out


def _metric_function(name: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(name):
        return name
    from .. import evaluate

    not_metrics = ("Score", "compare", "Comparison")
    fn = getattr(evaluate, name, None) if name in evaluate.__all__ else None
    if fn is None or name in not_metrics:
        known = ", ".join(n for n in evaluate.__all__ if n not in not_metrics)
        raise ValueError(f"no metric named {name!r} in pellucid.evaluate; known metrics: {known}")
    return fn


def _score(fn: Callable[..., Any], label: str, model: Any, expl: Explanation, params: dict[str, Any],
           seed: int | None, batch_size: int | None) -> Score:
    signature = inspect.signature(fn)
    names = list(signature.parameters)
    kwargs = dict(params)
    if "seed" in names and "seed" not in kwargs:
        kwargs["seed"] = seed
    if "batch_size" in names and "batch_size" not in kwargs and batch_size is not None:
        kwargs["batch_size"] = batch_size
    if names and names[0] == "explanation":
        score = fn(expl, **kwargs)
    elif len(names) > 1 and names[1] == "explanation":
        score = fn(model, expl, **kwargs)
    else:
        raise ValueError(
            f"metric {label!r} does not score an explanation (its arguments are {names[:3]}); "
            "randomisation tests take a method instead; call them directly"
        )
    if not isinstance(score, Score):
        raise TypeError(f"metric {label!r} returned {type(score).__name__}, not a Score")
    return score


def compare(
    model: Any,
    inputs: Any,
    *,
    methods: Sequence[Any] | Mapping[str, Any],
    metrics: Sequence[Any] | Mapping[str, Any],
    target: Any = None,
    seed: int | None = 0,
    batch_size: int | None = None,
) -> Comparison:
    """Explain ``inputs`` with every method and score each explanation with every metric.

    ``methods``: registry names, ``(name, params)`` pairs, or a mapping ``{label: name or (name,
    params)}`` (to compare two settings of one method). ``metrics``: names of the metrics in
    :mod:`pellucid.evaluate` (``"deletion"``, ``"insertion"``, ``"sparseness"``,
    ``"max_sensitivity"``, ``"faithfulness_correlation"``, ...), functions, or pairs / a mapping
    as for methods. Every method explains the same ``target``: with ``None`` it is the model's
    predicted class of each row, resolved once. ``seed`` goes to every random method and metric
    that takes one (unless its params set it); ``batch_size`` to every one that takes one.
    Cost: one explanation per method plus the metrics' own costs.

    Example:
        >>> from pellucid.zoo import digits_cnn, load_digits
        >>> model, _ = digits_cnn(); x = load_digits().x_test[:4]
        >>> c = compare(model, x, methods=["saliency", "random"], metrics=["sparseness"])
        >>> sorted(c.table)
        ['random', 'saliency']
    """
    method_specs = _pairs(methods, "methods")
    metric_specs = [(label, _metric_function(name), params)
                    for label, name, params in _pairs(metrics, "metrics")]
    m = wrap(model, batch_size=batch_size)
    x = m.prepare(inputs)
    t = select_target(m.outputs(x, batch_size=batch_size), target)

    table: dict[str, dict[str, float]] = {}
    scores: dict[str, dict[str, Score]] = {}
    explanations: dict[str, Explanation] = {}
    direction: dict[str, bool] = {}
    for label, name, params in method_specs:
        kwargs = dict(params)
        if isinstance(name, str):
            info = get(name)
            accepted = inspect.signature(info.function).parameters
            if info.random and "seed" not in kwargs:
                kwargs["seed"] = seed
            if "batch_size" in accepted and "batch_size" not in kwargs and batch_size is not None:
                kwargs["batch_size"] = batch_size
            expl = explain(model, x, name, target=t, **kwargs)
        else:
            expl = name(model, x, target=t, **kwargs)
        explanations[label] = expl
        scores[label] = {}
        for metric, fn, metric_params in metric_specs:
            score = _score(fn, metric, model, expl, metric_params, seed, batch_size)
            scores[label][metric] = score
            direction[metric] = score.higher_is_better
        table[label] = {metric: scores[label][metric].mean for metric, _, _ in metric_specs}
    return Comparison(table, scores, direction, explanations)
