"""One registry of explanation methods and of the metrics that check them.

The CLI, the report, :func:`explain`, ``evaluate.compare`` and (later) ``scale`` look methods and
metrics up here, so none of them keeps its own list. A method registers itself with
:func:`register` where it is defined, a metric with :func:`register_metric`.

:func:`register` also does, once for every method, what each would otherwise repeat: it binds the
call's arguments to the signature, and fills the returned :class:`~pellucid.Explanation`'s
``method`` (the registered name), ``params`` (every option the call used, defaults included; the
method's own entries, such as a layer's resolved name, take precedence) and ``meta["seconds"]``.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ._common import Stopwatch
from ._deprecation import rename_keywords
from .errors import UnknownMethodError
from .explanation import Explanation

__all__ = [
    "MethodInfo", "MetricInfo", "register", "register_metric", "get", "get_metric", "metric_of",
    "methods", "metrics", "explain",
]

#: Arguments that are not options of the result: the model, the rows, and how the call is shown.
_NOT_PARAMS = frozenset({"progress"})


@dataclasses.dataclass(frozen=True)
class MethodInfo:
    """A registered method and what it needs from the model and the call."""

    name: str
    function: Callable[..., Any]
    gradients: bool = False  # needs a differentiable model
    layer: bool = False  # needs ``layer=``
    background: bool = False  # needs ``background=``
    random: bool = False  # takes ``seed=``
    additive: bool = False  # values sum to outputs - baseline_outputs (approximately)
    summary: str = ""


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """A registered metric: ``function(model, explanation, **options) -> Score``.

    ``public`` is the function the user calls (the same, or one with its own natural signature,
    such as ``sparseness(explanation)``, that ``function`` adapts). ``needs`` names every keyword
    the caller must supply beyond the model and the explanation (``"method"``: it re-explains, so
    the explanation must come from a registered method; ``"mask"``: a ground-truth region;
    ``"shuffled_model"``; ...).
    """

    name: str
    function: Callable[..., Any]
    higher_is_better: bool
    needs: frozenset[str] = frozenset()
    summary: str = ""
    public: Callable[..., Any] | None = None


_METHODS: dict[str, MethodInfo] = {}
_METRICS: dict[str, MetricInfo] = {}


def _summary(function: Callable[..., Any]) -> str:
    doc = (function.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _check_new(store: Mapping[str, Any], name: str, function: Callable[..., Any], what: str) -> None:
    if name in store and store[name].function.__wrapped__ is not function:
        raise ValueError(f"{what} named {name!r} is already registered")


def register(
    name: str,
    *,
    gradients: bool = False,
    layer: bool = False,
    background: bool = False,
    random: bool = False,
    additive: bool = False,
    renamed: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register an explanation method under ``name``.

    The method is written as ``method(model, inputs, *, target=None, ...)`` returning an
    :class:`Explanation`; it need not set ``method``, the call's ``params`` or the wall time (see
    the module docstring). ``renamed={old: new}`` accepts old keyword names for one release, with
    a ``DeprecationWarning``. The docstring's first line is the method's summary.
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        _check_new(_METHODS, name, function, "an explanation method")
        signature = inspect.signature(function)
        skip = set(list(signature.parameters)[:2]) | _NOT_PARAMS
        spread = {p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD}

        @functools.wraps(function)
        def method(*args: Any, **kwargs: Any) -> Explanation:
            if renamed:
                kwargs = rename_keywords(function.__name__, kwargs, renamed)
            clock = Stopwatch()
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            result = function(*bound.args, **bound.kwargs)
            options: dict[str, Any] = {}
            for key, value in bound.arguments.items():
                if key in spread:  # a method's **options for another method (smoothgrad's base)
                    options.update(value)
                elif key not in skip:
                    options[key] = value
            result.method = name
            result.params = {**options, **result.params}
            result.meta.setdefault("seconds", clock.seconds())
            return result

        method.__renamed__ = dict(renamed or {})  # type: ignore[attr-defined]
        _METHODS[name] = MethodInfo(name, method, gradients, layer, background, random, additive,
                                    _summary(function))
        return method

    return decorate


def register_metric(
    name: str, *, higher_is_better: bool, needs: tuple[str, ...] = (),
    adapt: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a metric under ``name``; returns the function the user calls.

    The decorated function is timed (``meta["seconds"]`` of what it returns, or of each value of
    a returned dict). ``adapt(function)`` turns a function with another signature into the
    registered ``(model, explanation, **options)`` form (a metric that never runs the model).
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in _METRICS and _METRICS[name].public.__wrapped__ is not function:
            raise ValueError(f"a metric named {name!r} is already registered")

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            clock = Stopwatch()
            result = function(*args, **kwargs)
            for part in result.values() if isinstance(result, dict) else [result]:
                if isinstance(getattr(part, "meta", None), dict):
                    part.meta.setdefault("seconds", clock.seconds())
            return result

        _METRICS[name] = MetricInfo(name, adapt(timed) if adapt else timed, higher_is_better,
                                    frozenset(needs), _summary(function), timed)
        return timed

    return decorate


def metric_of(function: Callable[..., Any]) -> MetricInfo | None:
    """The registered metric whose public function is ``function`` (also seen through wrappers
    such as a deprecation's), or None."""
    chain = [function]
    while hasattr(chain[-1], "__wrapped__") and len(chain) < 8:
        chain.append(chain[-1].__wrapped__)
    return next((info for info in _METRICS.values() if any(f is info.public for f in chain)), None)


def get(name: str) -> MethodInfo:
    """The :class:`MethodInfo` registered under ``name``."""
    try:
        return _METHODS[name]
    except KeyError:
        known = ", ".join(sorted(_METHODS))
        raise UnknownMethodError(
            f"no explanation method named {name!r}; registered methods: {known}"
        ) from None


def get_metric(name: str) -> MetricInfo:
    """The :class:`MetricInfo` registered under ``name`` (metrics register when
    ``pellucid.evaluate`` is imported)."""
    try:
        return _METRICS[name]
    except KeyError:
        known = ", ".join(sorted(_METRICS)) or "none (import pellucid.evaluate)"
        raise UnknownMethodError(f"no metric named {name!r}; registered metrics: {known}") from None


def methods(*, details: bool = False) -> list[str] | list[MethodInfo]:
    """Names of all registered methods (sorted), or their :class:`MethodInfo` with ``details``."""
    names = sorted(_METHODS)
    return [_METHODS[n] for n in names] if details else names


def metrics(*, details: bool = False) -> list[str] | list[MetricInfo]:
    """Names of all registered metrics (sorted), or their :class:`MetricInfo` with ``details``."""
    names = sorted(_METRICS)
    return [_METRICS[n] for n in names] if details else names


def explain(model: Any, inputs: Any, method: str | None = None, /, **params: Any) -> Explanation:
    """Run a registered method by name: ``explain(model, x, method="saliency", target=3)``.

    The name may also be given positionally, ``explain(model, x, "saliency", target=3)``.
    """
    if method is None:
        if "method" not in params:
            raise TypeError("explain() needs a method name: explain(model, inputs, method='saliency')")
        method = params.pop("method")
    if not isinstance(method, str):
        raise UnknownMethodError(f"the method must be given by name (a str), got {method!r}")
    return get(method).function(model, inputs, **params)
