"""Result types of :mod:`pellucid.simplify`: small dataclasses that print, give a table and draw.

Every report states the cost in accuracy honestly: ``accuracy_before``/``accuracy_after`` on the
labelled data the call was given (``None`` without labels), and ``agreement`` with the original
model on the same rows. The functions that make a simpler model return ``Simplified(model,
report)``, a named tuple that still unpacks as ``model, report = prune(...)``.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch import nn

from .._table import text_table

__all__ = ["Simplified", "PruneReport", "TrainReport", "QuantizeReport", "DistillReport", "recorded"]


class Simplified(NamedTuple):
    """What ``prune``, ``fine_tune``, ``quantize``, ``distill`` and ``train`` return: the new
    ``model`` (a copy; the one passed in is never changed) and the ``report`` of its cost."""

    model: nn.Module
    report: Any


def recorded(*hidden: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the result's ``params`` get every option of the call, defaults included.

    The first two parameters (the model and its data), ``progress`` and the ``hidden`` ones (data
    sets, names) are not options. Entries the function put in ``params`` itself take precedence.
    The result is a :class:`Simplified` (its report is filled) or a result with ``params``.
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(function)
        skip = set(list(signature.parameters)[:2]) | {"progress", *hidden}

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            result = function(*bound.args, **bound.kwargs)
            target = result.report if isinstance(result, Simplified) else result
            options = {k: v for k, v in bound.arguments.items() if k not in skip}
            target.params = {**options, **target.params}
            return result

        return call

    return decorate


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _accuracy(before: float | None, after: float | None) -> str:
    return f"accuracy {_pct(before)} -> {_pct(after)}"


def _epochs(losses: list[float]) -> list[dict[str, Any]]:
    return [{"epoch": i + 1, "loss": loss} for i, loss in enumerate(losses)]


@dataclass(eq=False)
class PruneReport:
    """What :func:`~pellucid.simplify.prune` removed, layer by layer.

    ``layers`` holds one dict per pruned layer: ``name``, ``kind``, ``shape_before``,
    ``shape_after``, ``parameters`` (weights of the layer before pruning), ``removed`` (weights
    zeroed or cut), ``sparsity`` (zero share of the layer's weight after pruning; for structured
    pruning the share of output units removed). ``masks`` (unstructured only) maps parameter names
    of the pruned copy to 0/1 tensors, used by :func:`~pellucid.simplify.fine_tune`.
    """

    method: str
    layers: list[dict[str, Any]]
    parameters_before: int
    parameters_after: int
    nonzero_before: int
    nonzero_after: int
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    agreement: float | None = None
    masks: dict[str, Any] = field(default_factory=dict, repr=False)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def removed(self) -> int:
        """Weights removed: zeroed (unstructured) or cut from the tensors (structured)."""
        return sum(layer["removed"] for layer in self.layers)

    @property
    def sparsity(self) -> float:
        """Share of the pruned layers' weights that were removed."""
        total = sum(layer["parameters"] for layer in self.layers)
        return self.removed / total if total else 0.0

    def table(self) -> list[dict[str, Any]]:
        """One row per pruned layer (the entries of ``layers``)."""
        return [dict(layer) for layer in self.layers]

    def __str__(self) -> str:
        layers = text_table(
            self.table(),
            ["name", "kind", "shape_before", "shape_after", "parameters", "removed", "sparsity"],
            headers={"name": "layer", "shape_before": "before", "shape_after": "after",
                     "parameters": "weights"},
            formats={"sparsity": "{:.1%}".format},
        )
        return (
            f"{self.method}: removed {self.removed} of {sum(l['parameters'] for l in self.layers)} "
            f"weights ({100 * self.sparsity:.1f}%); parameters {self.parameters_before} -> "
            f"{self.parameters_after}, non-zero {self.nonzero_before} -> {self.nonzero_after}\n"
            f"{_accuracy(self.accuracy_before, self.accuracy_after)}, agreement with the original "
            f"{_pct(self.agreement)}\n{layers}"
        )

    def __repr__(self) -> str:
        return (f"PruneReport({self.method}, sparsity={self.sparsity:.3f}, "
                f"accuracy {self.accuracy_before} -> {self.accuracy_after})")

    def plot(self, **kwargs: Any) -> Any:
        """Share removed per layer, as horizontal bars (see :func:`pellucid.plot.simplify.pruning`)."""
        from ..plot import simplify as _plots

        return _plots.pruning(self, **kwargs)


@dataclass(eq=False)
class TrainReport:
    """A training run (``fine_tune``, ``train``): mean loss per epoch, accuracy before and after."""

    losses: list[float]
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One row per epoch: its mean training loss."""
        return _epochs(self.losses)

    def __str__(self) -> str:
        return (f"{len(self.losses)} epochs, loss {self.losses[0]:.4g} -> {self.losses[-1]:.4g}; "
                f"{_accuracy(self.accuracy_before, self.accuracy_after)}")

    __repr__ = __str__

    def plot(self, **kwargs: Any) -> Any:
        """Loss per epoch (see :func:`pellucid.plot.simplify.training`)."""
        from ..plot import simplify as _plots

        return _plots.training(self, **kwargs)


@dataclass(eq=False)
class QuantizeReport:
    """Sizes and cost of :func:`~pellucid.simplify.quantize`.

    ``size_before``/``size_after``: bytes of the serialised ``state_dict``; ``weight_bytes_before``
    /``weight_bytes_after``: bytes of the weights of the quantized layers alone (float32 against
    int8); ``layers``: the quantized layers' names; ``agreement``: share of rows predicted alike.
    """

    mode: str
    dtype: str
    layers: list[str]
    size_before: int
    size_after: int
    weight_bytes_before: int
    weight_bytes_after: int
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def compression(self) -> float:
        """How many times smaller the quantized layers' weights are."""
        return self.weight_bytes_before / max(1, self.weight_bytes_after)

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_before is None:
            return None
        return self.accuracy_before - self.accuracy_after

    def __str__(self) -> str:
        change = "n/a" if self.max_abs_diff is None else f"{self.max_abs_diff:.4g}"
        return (
            f"{self.mode} {self.dtype} quantization of {len(self.layers)} layer(s)\n"
            f"weights {self.weight_bytes_before} -> {self.weight_bytes_after} bytes "
            f"({self.compression:.2f}x smaller); state_dict {self.size_before} -> {self.size_after} bytes\n"
            f"{_accuracy(self.accuracy_before, self.accuracy_after)}, agreement {_pct(self.agreement)}, "
            f"largest output change {change}"
        )

    def __repr__(self) -> str:
        return (f"QuantizeReport({self.mode} {self.dtype}, {self.compression:.2f}x, "
                f"agreement={self.agreement})")

    def plot(self, **kwargs: Any) -> Any:
        """Weight bytes before and after (see :func:`pellucid.plot.simplify.quantization`)."""
        from ..plot import simplify as _plots

        return _plots.quantization(self, **kwargs)


@dataclass(eq=False)
class DistillReport:
    """A distillation run: the student's fidelity to the teacher on held-out rows, and the cost.

    ``fidelity``: share of held-out rows where student and teacher predict the same class;
    ``teacher_accuracy``/``student_accuracy`` on held-out labelled rows (``None`` without labels).
    """

    fidelity: float
    teacher_parameters: int
    student_parameters: int
    losses: list[float]
    teacher_accuracy: float | None = None
    student_accuracy: float | None = None
    train_fidelity: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def compression(self) -> float:
        return self.teacher_parameters / max(1, self.student_parameters)

    def table(self) -> list[dict[str, Any]]:
        """One row per epoch: its mean distillation loss."""
        return _epochs(self.losses)

    def __str__(self) -> str:
        return (
            f"student with {self.student_parameters} parameters ({self.compression:.1f}x fewer than "
            f"the teacher's {self.teacher_parameters})\nfidelity to the teacher on held-out rows "
            f"{_pct(self.fidelity)} (training rows {_pct(self.train_fidelity)}); accuracy: teacher "
            f"{_pct(self.teacher_accuracy)}, student {_pct(self.student_accuracy)}"
        )

    def __repr__(self) -> str:
        return f"DistillReport(fidelity={self.fidelity:.4f}, compression={self.compression:.1f}x)"

    def plot(self, **kwargs: Any) -> Any:
        """Loss per epoch, titled with the fidelity (see :func:`pellucid.plot.simplify.distillation`)."""
        from ..plot import simplify as _plots

        return _plots.distillation(self, **kwargs)
