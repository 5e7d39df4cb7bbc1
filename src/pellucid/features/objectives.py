"""What :func:`~pellucid.features.maximize` maximizes: objectives on layer activations and logits.

An :class:`Objective` maps the activations of the layers it names (and the model's outputs) to one
number per image. Objectives compose like numbers, so ``channel("conv2", 3) - 0.5 *
channel("conv2", 5)`` asks for channel 3 and against channel 5 (Lucent's ``objectives`` module;
Olah et al. 2017, "Feature Visualization", Distill).

- :func:`channel`   mean of one channel over all positions (a linear layer's unit: that unit);
- :func:`neuron`    one channel at one position (the centre by default);
- :func:`direction` the projection of the activations on a unit vector, averaged over positions;
- :func:`class_logit` one column of the model's output, the wanted class ``target``;
- any ``Objective`` built from a function ``f(acts: dict, outputs) -> (n,)`` and its layers.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .._deprecation import renamed
from ..errors import InputError, LayerError, TargetError

__all__ = ["Objective", "channel", "neuron", "direction", "class_logit", "as_objective"]

Fn = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


class Objective:
    """``fn(acts, outputs) -> (n,)`` over the layers in ``layers``; supports ``+ - * /`` and ``-x``."""

    def __init__(self, fn: Fn, layers: Sequence[str] = (), description: str = "objective") -> None:
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.description = description

    def __call__(self, acts: dict[str, torch.Tensor], outputs: torch.Tensor) -> torch.Tensor:
        return self.fn(acts, outputs)

    def __repr__(self) -> str:
        return f"Objective({self.description})"

    def _combine(self, other: Any, op: Callable, sym: str) -> Objective:
        if isinstance(other, Objective):
            return Objective(lambda a, o: op(self(a, o), other(a, o)), self.layers + other.layers,
                             f"{self.description} {sym} {other.description}")
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return Objective(lambda a, o: op(self(a, o), other), self.layers,
                             f"{self.description} {sym} {other:g}")
        return NotImplemented

    def __add__(self, other: Any) -> Objective:
        return self._combine(other, lambda p, q: p + q, "+")

    def __radd__(self, other: Any) -> Objective:  # sum([...]) starts from 0
        return self if isinstance(other, (int, float)) and other == 0 else self.__add__(other)

    def __sub__(self, other: Any) -> Objective:
        return self._combine(other, lambda p, q: p - q, "-")

    def __rsub__(self, other: Any) -> Objective:
        return (-self).__add__(other)

    def __neg__(self) -> Objective:
        return Objective(lambda a, o: -self(a, o), self.layers, f"-({self.description})")

    def __mul__(self, other: Any) -> Objective:
        if isinstance(other, Objective):
            return NotImplemented
        out = self._combine(other, lambda p, q: p * q, "*")
        if out is not NotImplemented:
            out.description = f"{other:g} * {self.description}"
        return out

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Objective:
        if isinstance(other, Objective):
            return NotImplemented
        return self._combine(other, lambda p, q: p / q, "/")


def _units(acts: torch.Tensor, layer: str, index: int, what: str) -> torch.Tensor:
    if acts.dim() < 2:
        raise LayerError(f"layer {layer!r} gives outputs shaped {tuple(acts.shape)}; no {what}s to select")
    if not -acts.shape[1] <= index < acts.shape[1]:
        raise LayerError(
            f"layer {layer!r} has {acts.shape[1]} {what}s (outputs shaped "
            f"{tuple(acts.shape[1:])} per row); {what} {index} does not exist")
    return acts[:, index]


def _check_index(index: Any, what: str) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise InputError(f"{what} must be an int, got {index!r}")
    return index


def channel(layer: str, index: int) -> Objective:
    """Mean activation of channel ``index`` of ``layer`` over all positions: ``mean_ij A[c, i, j]``."""
    index = _check_index(index, "channel")

    def fn(acts, _out):
        a = _units(acts[layer], layer, index, "channel")
        return a.reshape(len(a), -1).mean(1)
    return Objective(fn, [layer], f"channel({layer!r}, {index})")


def neuron(layer: str, index: int, *, position: Sequence[int] | None = None) -> Objective:
    """Channel ``index`` of ``layer`` at one position (default: the centre), ``A[c, y, x]``."""
    index = _check_index(index, "channel")

    def fn(acts, _out):
        a = _units(acts[layer], layer, index, "channel")
        if a.dim() == 1:
            return a
        pos = tuple(position) if position is not None else tuple(s // 2 for s in a.shape[1:])
        if len(pos) != a.dim() - 1 or any(not 0 <= p < s for p, s in zip(pos, a.shape[1:])):
            raise LayerError(f"position {pos} is outside layer {layer!r}'s map of size {tuple(a.shape[1:])}")
        return a[(slice(None), *pos)]
    return Objective(fn, [layer], f"neuron({layer!r}, {index})")


def direction(layer: str, vector: Any) -> Objective:
    """Projection of ``layer``'s activations on ``vector / |vector|`` (channel axis 1), averaged
    over positions: a direction in the layer's space rather than one unit."""
    v = torch.as_tensor(vector, dtype=torch.float32).flatten()
    if not bool(torch.isfinite(v).all()) or float(v.norm()) == 0:
        raise InputError("direction vector must be finite and non-zero")
    v = v / v.norm()

    def fn(acts, _out):
        a = acts[layer]
        if a.dim() < 2 or a.shape[1] != len(v):
            raise LayerError(
                f"layer {layer!r} has {a.shape[1] if a.dim() > 1 else 0} channels but the direction "
                f"has {len(v)} entries")
        proj = torch.einsum("nc...,c->n...", a, v.to(a))
        return proj.reshape(len(a), -1).mean(1)
    return Objective(fn, [layer], f"direction({layer!r})")


@renamed(index="target")
def class_logit(target: int) -> Objective:
    """The model's output column ``target``, the wanted class (a logit stays a logit)."""
    target = _check_index(target, "target")

    def fn(_acts, out):
        if not -out.shape[1] <= target < out.shape[1]:
            raise TargetError(
                f"class {target} is out of range for a model with {out.shape[1]} outputs "
                f"(valid: 0 to {out.shape[1] - 1})")
        return out[:, target]
    return Objective(fn, [], f"class_logit({target})")


def as_objective(obj: Any) -> Objective:
    """An :class:`Objective` from itself, ``"layer:channel"`` (Lucent's shorthand) or an int (a class)."""
    if isinstance(obj, Objective):
        return obj
    if isinstance(obj, str) and ":" in obj:
        layer, _, idx = obj.rpartition(":")
        if idx.lstrip("-").isdigit():
            return channel(layer, int(idx))
    if isinstance(obj, int) and not isinstance(obj, bool):
        return class_logit(obj)
    raise InputError(
        f"objective must be an Objective (features.channel(...), neuron, direction, class_logit, "
        f"or sums of these), a 'layer:channel' string or a class index; got {obj!r}")
