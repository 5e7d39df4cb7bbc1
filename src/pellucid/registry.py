"""One registry of explanation methods: name -> function and what it needs.

The CLI, the report, ``explain()`` and (later) ``scale`` all look methods up here, so none of
them keeps its own list. A method registers itself with :func:`register` where it is defined.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .errors import UnknownMethodError

__all__ = ["MethodInfo", "register", "get", "methods", "explain"]


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


_REGISTRY: dict[str, MethodInfo] = {}


def register(
    name: str,
    *,
    gradients: bool = False,
    layer: bool = False,
    background: bool = False,
    random: bool = False,
    additive: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``function`` under ``name`` (its docstring's first line is its summary)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"an explanation method named {name!r} is already registered")
        summary = (function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else ""
        _REGISTRY[name] = MethodInfo(
            name, function, gradients, layer, background, random, additive, summary
        )
        return function

    return decorate


#: Packages that register methods but load lazily (``pellucid.features`` registers conductance).
_LAZY_REGISTRANTS = ("pellucid.features",)


def _load_lazy_registrants() -> None:
    import importlib

    for module in _LAZY_REGISTRANTS:
        importlib.import_module(module)


def get(name: str) -> MethodInfo:
    """The :class:`MethodInfo` registered under ``name``."""
    if name not in _REGISTRY:
        _load_lazy_registrants()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownMethodError(
            f"no explanation method named {name!r}; registered methods: {known}"
        ) from None


def methods(*, details: bool = False) -> list[str] | list[MethodInfo]:
    """Names of all registered methods (sorted), or their :class:`MethodInfo` with ``details``."""
    _load_lazy_registrants()
    names = sorted(_REGISTRY)
    return [_REGISTRY[n] for n in names] if details else names


def explain(model: Any, inputs: Any, *name: str, **params: Any):
    """Run a registered method by name: ``explain(model, x, method="saliency", target=3)``.

    The name may also be given positionally, ``explain(model, x, "integrated_gradients",
    method="riemann_left")``; then a ``method=`` keyword goes to the explanation method itself
    (Integrated Gradients calls its quadrature rule ``method``, as Captum does).
    """
    if len(name) > 1:
        raise TypeError(f"explain() takes one method name, got {name!r}")
    if name:
        chosen = name[0]
    elif "method" in params:
        chosen = params.pop("method")
    else:
        raise TypeError("explain() needs a method name: explain(model, inputs, method='saliency')")
    return get(chosen).function(model, inputs, **params)
