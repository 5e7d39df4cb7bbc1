"""Exceptions raised by pellucid.

Every error a user can cause (bad inputs, a target out of range, an unknown layer, a method that
needs gradients on a black-box model) raises a subclass of :class:`PellucidError`, with a message
that says what was wrong and what to do. The subclasses also derive from the built-in exception a
Python user would expect (``ValueError``, ``KeyError``, ``TypeError``), so existing ``except``
clauses keep working.
"""
from __future__ import annotations

__all__ = [
    "PellucidError",
    "InputError",
    "TargetError",
    "BaselineError",
    "LayerError",
    "ModelError",
    "NotDifferentiableError",
    "UnknownMethodError",
    "FormatError",
    "UnsupportedLayerError",
]


class PellucidError(Exception):
    """Base class of every exception pellucid raises on purpose."""


class InputError(PellucidError, ValueError):
    """The inputs cannot be explained as given: NaN/inf, wrong rank or shape, wrong type."""


class TargetError(PellucidError, ValueError):
    """The target does not select an output: out of range, wrong length, wrong type."""


class BaselineError(PellucidError, ValueError):
    """A baseline (reference input) does not broadcast to the inputs or holds NaN/inf."""


class LayerError(PellucidError, KeyError):
    """A layer name or module does not belong to the model."""

    def __str__(self) -> str:  # KeyError would quote the message; show it as written
        return str(self.args[0]) if self.args else ""


class ModelError(PellucidError, TypeError):
    """The object cannot be wrapped as a model, or the model failed on the inputs."""


class NotDifferentiableError(ModelError):
    """A gradient-based method was asked of a model that gives no gradients."""


class UnknownMethodError(PellucidError, KeyError):
    """No explanation method is registered under that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FormatError(PellucidError, ValueError):
    """A saved file is not a pellucid file, or was written by an incompatible version."""


class UnsupportedLayerError(ModelError):
    """A modified-backward method (LRP, DeepLIFT, guided backprop) has no rule for a layer or
    operation of the model; the message names it and says what to do."""
