"""How a metric joins the registry: ``@metric(name, higher_is_better=..., needs=...)``.

Every registered metric is called the same way, ``get_metric(name).function(model, explanation,
**options) -> Score``, which is how :func:`~pellucid.evaluate.compare` runs any of them. The
registry also does once what every metric would otherwise repeat: it times the call into
``Score.meta["seconds"]``.

A metric that never evaluates the model (sparseness, the localisation metrics) keeps its natural
signature ``metric(explanation, ...)`` for the user and is registered through
:func:`without_model`, which takes the model first and drops it. ``needs`` declares what a metric
wants beyond the model and the explanation: ``"method"`` (it re-runs the explanation's method, so
that must be a registered one), ``"mask"`` (a ground-truth region, ``compare(mask=...)``) or any
other keyword the caller must supply (``"shuffled_model"``).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..registry import metric_of, register_metric

__all__ = ["metric", "without_model", "registered_name"]


def metric(
    name: str,
    *,
    higher_is_better: bool,
    needs: tuple[str, ...] = (),
    adapt: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register the metric under ``name`` (:func:`pellucid.registry.register_metric`,
    which also times it)."""
    return register_metric(name, higher_is_better=higher_is_better, needs=needs, adapt=adapt)


def without_model(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function(explanation, ...)`` as ``call(model, explanation, ...)``, the model unused."""

    def call(model: Any, *args: Any, **options: Any) -> Any:
        return function(*args, **options)

    model = inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Any")
    signature = inspect.signature(function)
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[model, *signature.parameters.values()])
    call.__name__ = call.__qualname__ = function.__name__
    call.__doc__, call.__module__ = function.__doc__, function.__module__
    return call


def registered_name(function: Callable[..., Any]) -> str | None:
    """The name under which ``function`` (a metric the user holds, perhaps behind a
    deprecation wrapper) is registered, or None."""
    info = metric_of(function)
    return info.name if info is not None else None
