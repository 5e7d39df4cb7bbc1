"""Several explanation methods scored by several metrics: one table, one picture.

``compare`` explains the inputs once per method, all for the same target (resolved once from the
model's prediction when none is given, so every method explains the same class), scores every
explanation with every metric (by name from the registry, :func:`pellucid.evaluate.metrics`, each
called as ``metric(model, explanation, **options)``), and returns a :class:`Comparison` holding
the per-row :class:`Score` objects and the table of their means.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .._common import progress_bar
from .._deprecation import rename_keywords, warn
from .._table import text_table
from ..adapters import wrap
from ..errors import InputError
from ..explanation import Explanation
from ..model import select_target
from ..registry import explain, get, get_metric
from ..registry import methods as registered_methods
from ._metric import registered_name
from ._perturb import accepts
from ._score import Score

__all__ = ["compare", "Comparison"]


@dataclasses.dataclass
class Comparison:
    """The result of :func:`compare`.

    Attributes:
        means: ``{method label: {metric label: mean score}}`` (NaN rows ignored in the mean).
        scores: ``{method label: {metric label: Score}}``, the per-row scores.
        higher_is_better: ``{metric label: bool}``, the direction each metric improves in.
        explanations: ``{method label: Explanation}``, what was scored (all for one target).

    ``table()`` gives the means as rows, ``str()`` as text, :meth:`to_markdown` as Markdown and
    :meth:`plot` as a coloured grid.
    """

    means: dict[str, dict[str, float]]
    scores: dict[str, dict[str, Score]]
    higher_is_better: dict[str, bool]
    explanations: dict[str, Explanation] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def methods(self) -> list[str]:
        return list(self.means)

    @property
    def metrics(self) -> list[str]:
        return list(self.higher_is_better)

    @property
    def table(self) -> _Table:
        """``table()``: one dict per method, ``{"method": label, metric: mean, ...}``.

        Reading ``table`` itself as the old ``{method: {metric: mean}}`` dict still works for one
        release, with a ``DeprecationWarning``; that dict is :attr:`means`.
        """
        return _Table(self)

    def ranks(self) -> np.ndarray:
        """``(methods, metrics)`` array in ``[0, 1]``: 1 for the best method of a metric, 0 for
        the worst, whatever the metric's direction (ties share their mean rank; NaN stays NaN)."""
        out = np.full((len(self.methods), len(self.metrics)), np.nan)
        for j, metric in enumerate(self.metrics):
            col = np.array([self.means[m][metric] for m in self.methods], dtype=float)
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

    def headers(self) -> dict[str, str]:
        """Each metric's label with its direction: ``"deletion ↓"``, ``"insertion ↑"``."""
        return {m: f"{m} {'↑' if self.higher_is_better[m] else '↓'}" for m in self.metrics}

    def to_markdown(self, digits: int = 4) -> str:
        """A Markdown table, one row per method; the best value of each metric is in bold."""
        ranks = self.ranks()
        head = ["method", *self.headers().values()]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i, method in enumerate(self.methods):
            cells = [method]
            for j, metric in enumerate(self.metrics):
                text = _fmt(self.means[method][metric], digits)
                cells.append(f"**{text}**" if ranks[i, j] == 1.0 else text)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return text_table(self.table(), ["method", *self.metrics], headers=self.headers())

    def plot(self, **kwargs: Any) -> Any:
        """Methods × metrics grid coloured by rank (:func:`pellucid.plot.evaluate.comparison`)."""
        from ..plot import evaluate as _plots
        return _plots.comparison(self, **kwargs)


class _Table(Mapping):
    """``Comparison.table``: call it for the rows; reading it as a mapping is the deprecated
    ``{method: {metric: mean}}`` dict (to go in the next release, with this class)."""

    def __init__(self, comparison: Comparison) -> None:
        self._comparison = comparison

    def __call__(self) -> list[dict[str, Any]]:
        c = self._comparison
        return [{"method": method, **{m: c.means[method][m] for m in c.metrics}}
                for method in c.methods]

    def _means(self) -> dict[str, dict[str, float]]:
        warn("Comparison.table is a method now: table() returns a list of dicts, one per method; "
             "the {method: {metric: mean}} dict is Comparison.means", stacklevel=4)
        return self._comparison.means

    def __getitem__(self, method: str) -> dict[str, float]:
        return self._means()[method]

    def __iter__(self) -> Iterator[str]:
        return iter(self._means())

    def __len__(self) -> int:
        return len(self._means())


_dataclass_init = Comparison.__init__


@functools.wraps(_dataclass_init)
def _init(self: Comparison, *args: Any, **kwargs: Any) -> None:
    _dataclass_init(self, *args, **rename_keywords("Comparison", kwargs, {"table": "means"}))


Comparison.__init__ = _init  # type: ignore[method-assign]  # Comparison(table=...): one release


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
                raise InputError(f"each of {what} is a name or a (name, params dict) pair; got {entry!r}")
            name, params = entry[0], dict(entry[1])
        else:
            name, params = entry, {}
        if label is None:
            label = name if isinstance(name, str) else getattr(name, "__name__", repr(name))
        label = str(label)
        if label in seen:
            raise InputError(
                f"{what} lists {label!r} twice; give a dict {{label: (name, params)}} to tell the "
                "entries apart"
            )
        seen.add(label)
        out.append((label, name, params))
    if not out:
        raise InputError(f"compare() needs at least one entry in {what}")
    return out


@dataclasses.dataclass(frozen=True)
class _Metric:
    """How to call one metric: ``function(model, explanation, **options)``; ``public`` is the
    function whose keywords it takes; ``needs`` as in :class:`pellucid.registry.MetricInfo`."""

    function: Callable[..., Any]
    public: Callable[..., Any]
    needs: frozenset[str]


def _metric(name: Any) -> _Metric:
    """A registered metric by name or by its function; any other function is taken to follow
    the convention ``function(model, explanation, **options) -> Score``."""
    if callable(name) and registered_name(name) is None:
        return _Metric(name, name, frozenset())
    if callable(name):
        name = registered_name(name)
    info = get_metric(name)
    return _Metric(info.function, info.public or info.function, info.needs)


def _check_needs(methods: list, metrics: list, mask: Any) -> None:
    """Refuse, before anything runs, a metric whose needs the call does not meet."""
    known = {info.function for info in registered_methods(details=True)}
    for label, metric, params in metrics:
        if "method" in metric.needs:
            for method_label, method, _ in methods:
                if not (isinstance(method, str) or method in known):
                    raise InputError(
                        f"metric {label!r} re-runs each explanation's method, so every method must "
                        f"be a registered one; {method_label!r} is not"
                    )
        for need in sorted(metric.needs - {"method"} - set(params)):
            if need != "mask" or mask is None:
                where = "compare(..., mask=...) or " if need == "mask" else ""
                raise InputError(f"metric {label!r} needs {need}=: give it as {where}the metric's "
                                 f"params, ({label!r}, {{{need!r}: ...}})")


def _with_defaults(function: Callable[..., Any], params: dict[str, Any], **shared: Any) -> dict[str, Any]:
    """``params`` plus each shared option (seed, batch_size, progress) the function takes and
    the params do not set."""
    options = dict(params)
    for key, value in shared.items():
        if value is not None and key not in options and accepts(function, key):
            options[key] = value
    return options


def compare(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    methods: Sequence[Any] | Mapping[str, Any],
    metrics: Sequence[Any] | Mapping[str, Any],
    mask: Any = None,
    seed: int | None = 0,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Comparison:
    """Explain ``inputs`` with every method and score each explanation with every metric.

    ``methods``: registry names, ``(name, params)`` pairs, or a mapping ``{label: name or (name,
    params)}`` (to compare two settings of one method). ``metrics``: names of registered metrics
    (:func:`pellucid.evaluate.metrics`: ``"deletion"``, ``"insertion"``, ``"sparseness"``,
    ``"max_sensitivity"``, ``"model_randomization"``, ...), their functions, or pairs / a mapping
    as for methods; a function of your own is called ``function(model, explanation, **params)``
    and returns a :class:`Score`. Every method explains the same ``target``: with ``None`` it is
    the model's predicted class of each row, resolved once. What a metric needs beyond the
    explanation comes from its params, or for ``"mask"`` (the localisation metrics) from
    ``mask``, a ground-truth mask of the inputs; metrics that re-run the method (robustness,
    randomisation) need registered methods. ``seed`` goes to every method and metric that takes
    one (unless its params set it), ``batch_size`` and ``progress`` likewise. Cost: one
    explanation per method plus the metrics' own costs. The model is read in eval mode and left
    as found; torch's global RNG is untouched.

    Example:
        >>> from pellucid.zoo import digits_cnn, load_digits
        >>> model, _ = digits_cnn(); x = load_digits().x_test[:4]
        >>> c = compare(model, x, methods=["saliency", "random"], metrics=["sparseness"])
        >>> [row["method"] for row in c.table()]
        ['saliency', 'random']
    """
    method_specs = _pairs(methods, "methods")
    metric_specs = [(label, _metric(name), params) for label, name, params in _pairs(metrics, "metrics")]
    _check_needs(method_specs, metric_specs, mask)
    m = wrap(model, batch_size=batch_size)
    x = m.prepare(inputs)
    with m.explaining():
        t = select_target(m.outputs(x, batch_size=batch_size, progress=False), target)
    shared = {"seed": seed, "batch_size": batch_size, "progress": progress}

    scores: dict[str, dict[str, Score]] = {}
    explanations: dict[str, Explanation] = {}
    direction: dict[str, bool] = {}
    cells = [(method, metric) for method in method_specs for metric in metric_specs]
    for (label, name, params), (metric_label, metric, metric_params) in progress_bar(
            cells, progress, "compare", unit="score"):
        if label not in explanations:
            fn = get(name).function if isinstance(name, str) else name
            kwargs = _with_defaults(fn, params, **shared)
            explanations[label] = (explain(model, x, name, target=t, **kwargs) if isinstance(name, str)
                                   else name(model, x, target=t, **kwargs))
            scores[label] = {}
        options = _with_defaults(metric.public, metric_params, **shared)
        if "mask" in metric.needs:
            options.setdefault("mask", mask)
        score = metric.function(model, explanations[label], **options)
        if not isinstance(score, Score):
            raise TypeError(f"metric {metric_label!r} returned {type(score).__name__}, not a Score")
        scores[label][metric_label] = score
        direction[metric_label] = score.higher_is_better
    means = {label: {metric: s.mean for metric, s in row.items()} for label, row in scores.items()}
    return Comparison(means, scores, direction, explanations)

