"""Old names keep working for one release, with a ``DeprecationWarning`` that names the new one.

:func:`renamed` is a decorator for keyword renames (``jsma(target_class=3)`` → ``target=3``),
:class:`renamed_attribute` a class attribute for a result's renamed field; :func:`warn` is for
everything else (an old value of an option, an old return shape).
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InputError

__all__ = ["renamed", "rename_keywords", "warn", "renamed_attribute"]


def warn(message: str, *, stacklevel: int = 3) -> None:
    """A ``DeprecationWarning`` pointing at the user's call (two frames up by default)."""
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel)


def rename_keywords(function: str, kwargs: dict[str, Any], old_to_new: Mapping[str, str], *,
                    stacklevel: int = 4) -> dict[str, Any]:
    """``kwargs`` with every old keyword moved to its new name (warning once per old name)."""
    for old, new in old_to_new.items():
        if old in kwargs:
            if new in kwargs:
                raise InputError(f"{function}() got both {new}= and its old name {old}=; give {new}= only")
            warn(f"{function}({old}=...) is deprecated and will be removed in the next release; "
                 f"use {new}=...", stacklevel=stacklevel)
            kwargs[new] = kwargs.pop(old)
    return kwargs


def renamed(**old_to_new: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: accept the old keyword names ``old=new`` for one release."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            return function(*args, **rename_keywords(function.__name__, kwargs, old_to_new))

        call.__renamed__ = dict(old_to_new)  # type: ignore[attr-defined]
        return call

    return decorate


class renamed_attribute:  # noqa: N801 - used like a decorator-made attribute: ``old = renamed_attribute("new")``
    """A result attribute's old name: reads the new one, with a ``DeprecationWarning``."""

    def __init__(self, new: str) -> None:
        self.new = new
        self.old = new

    def __set_name__(self, owner: type, name: str) -> None:
        self.old = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        warn(f"{type(obj).__name__}.{self.old} is deprecated and will be removed in the next "
             f"release; use .{self.new}")
        return getattr(obj, self.new)
