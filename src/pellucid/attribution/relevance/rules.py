"""LRP rules: how relevance crosses one linear layer (Linear, Conv1d/2d/3d).

A rule sees the layer as an affine map ``z = op(a, W, b)`` and returns the layer's output with its
true forward value but a modified gradient. Relevance itself never flows backward; what flows is
``g`` with ``R = a ⊙ g`` (relevance per unit of activation). For a rule whose relevance has the
form ``R_i = a_i Σ_j W'_ji R_j / z'_j`` the backward must send ``g_a = W'^T (R_z / stab(z'))``
to the input (``R_z = z ⊙ g_z``): the rule evaluates ``z' = op(a, W', b')`` with autograd, adds
what else makes up ``z`` without it, and scales the gradient arriving at ``z'`` by
``z / stab(z')`` (a tensor hook: one multiplication in the backward pass, no extra copies).
Activations then need nothing: the gradient of a ReLU (a mask) is exactly LRP's pass-through in
this form, and every positively homogeneous linear operation (pooling, sums, reshapes, residual
additions) splits relevance in proportion to its inputs by Euler's theorem. One modified forward
and one ordinary backward give the whole relevance map.

``Flat``, ``WSquare`` and ``ZBox`` distribute relevance without the factor ``a_i``; they are
*input rules*: they write the relevance of the model's input into a "sink" tensor (a leaf of
zeros, so it leaves the forward values alone, whose gradient is the relevance) and apply only
to a layer that reads the model's input.

Every rule costs one evaluation of the layer with modified weights on top of the plain forward
(``Epsilon``: none; ``Gamma``, ``AlphaBeta``, ``ZPlus``: two; ``ZBox``: three), and one
backward. The stabiliser adds ``ε·sign(z)`` (sign 0 taken as +1) to a denominator, as in Zennit.

References: Bach et al. 2015 (PLoS ONE, ε- and αβ-rules); Montavon et al. 2017 (Pattern
Recognition, z⁺/ZBox/W² — "deep Taylor decomposition"); Montavon et al. 2019 (LRP overview, γ);
Lapuschkin et al. 2019 (Nat. Commun., flat rule).
"""
from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...errors import InputError

__all__ = [
    "Rule", "Epsilon", "Zero", "ZPlus", "AlphaBeta", "Gamma", "Flat", "WSquare", "ZBox",
    "Affine", "stabilize",
]


@dataclass
class Affine:
    """One linear layer as the rules see it: ``op(a, weight, bias)`` is its output.

    ``kind`` is the module type used for composite lookup (``nn.Linear``, ``nn.Conv2d``, ...) also
    for functional calls (``F.linear``, ``F.conv2d``); ``name`` is the module's qualified name or,
    for a functional call, the name of its weight's owner.
    """

    name: str
    kind: type
    op: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    weight: torch.Tensor
    bias: torch.Tensor | None
    groups: int = 1

    def __call__(self, a: torch.Tensor, weight: torch.Tensor | None = None,
                 bias: Any = "same") -> torch.Tensor:
        return self.op(a, self.weight if weight is None else weight,
                       self.bias if isinstance(bias, str) else bias)


def stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``z + ε·sign(z)`` with sign(0) = +1; for ε = 0, zeros become ones (their ratio is 0)."""
    if eps == 0:
        return torch.where(z == 0, torch.ones_like(z), z)
    return z + torch.where(z >= 0, eps, -eps)


def _through(h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The value of ``z`` with the gradient of ``h``."""
    return h + (z.detach() - h).detach()


def scale_gradient(t: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``t`` itself; the gradient arriving at it is multiplied by ``scale`` (a constant)."""
    if t.requires_grad:
        t.register_hook(lambda g: g * scale)
    return t


def _ratio(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``z / stab(z) = |z| / (|z| + ε)``: the ε-rule's factor, 0 where z = 0."""
    m = z.abs()
    return m.div_(m + eps)


def _clamp(t: torch.Tensor | None, sign: int) -> torch.Tensor | None:
    if t is None:
        return None
    return t.clamp(min=0) if sign > 0 else t.clamp(max=0)


class Rule(abc.ABC):
    """Base class. ``input_rule`` rules need the sink and the model's input (see module doc)."""

    input_rule = False

    @abc.abstractmethod
    def __call__(self, layer: Affine, a: torch.Tensor, sink: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's output with this rule's gradient (see the module docstring)."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(type(self))


class Epsilon(Rule):
    """ε-rule: ``R_i = a_i Σ_j W_ji R_j / (z_j + ε·sign z_j)``; ε = 0 is LRP-0 (gradient × input).

    ``z`` includes the bias, which absorbs its share (so conservation holds for bias-free layers,
    up to ε). Cost: the layer's own forward, no extra evaluation. Bach et al. 2015.
    """

    def __init__(self, epsilon: float = 1e-6) -> None:
        if not epsilon >= 0:
            raise InputError(f"epsilon must be >= 0, got {epsilon!r}")
        self.epsilon = float(epsilon)

    def __call__(self, layer: Affine, a: torch.Tensor, sink: torch.Tensor | None = None) -> torch.Tensor:
        z = layer(a)
        if self.epsilon == 0:
            return z
        with torch.no_grad():
            scale = _ratio(z, self.epsilon)
        return scale_gradient(z, scale)


class Zero(Epsilon):
    """z-rule (LRP-0): ``R_i = a_i Σ_j W_ji R_j / z_j``, the ε-rule with ε = 0; equals gradient × input."""

    def __init__(self) -> None:
        super().__init__(0.0)


def _contributions(layer: Affine, a: torch.Tensor, neg_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) parts of ``z``: ``W⁺a⁺ + W⁻a⁻ + b⁺ ≥ 0`` and ``W⁻a⁺ + W⁺a⁻ + b⁻ ≤ 0``.

    Their sum is ``z``. Nonnegative inputs (after a ReLU, the common case) need two evaluations
    instead of four; the negative part is built without autograd unless ``neg_grad``.
    """
    wp, wn = layer.weight.clamp(min=0), layer.weight.clamp(max=0)
    bp, bn = _clamp(layer.bias, 1), _clamp(layer.bias, -1)
    if not bool((a < 0).any()):
        pos = layer(a, wp, bp)
        with torch.set_grad_enabled(neg_grad and torch.is_grad_enabled()):
            neg = layer(a, wn, bn)
        return pos, neg
    ap, an = a.clamp(min=0), a.clamp(max=0)
    pos = layer(ap, wp, bp) + layer(an, wn, None)
    with torch.set_grad_enabled(neg_grad and torch.is_grad_enabled()):
        neg = layer(ap, wn, bn) + layer(an, wp, None)
    return pos, neg


class AlphaBeta(Rule):
    """αβ-rule: ``R_i = Σ_j (α (a_i W_ji)⁺ / z⁺_j − β (a_i W_ji)⁻ / z⁻_j) R_j``, α − β = 1.

    Positive and negative contributions are normalised separately (biases go with their sign).
    Cost: two evaluations of the layer (four with negative inputs). Bach et al. 2015.
    """

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6) -> None:
        if alpha < 0 or beta < 0 or abs((alpha - beta) - 1.0) > 1e-12:
            raise InputError(f"AlphaBeta needs alpha, beta >= 0 and alpha - beta = 1; got "
                             f"alpha={alpha!r}, beta={beta!r}")
        self.alpha, self.beta, self.stabilizer = float(alpha), float(beta), float(stabilizer)

    def __call__(self, layer: Affine, a: torch.Tensor, sink: torch.Tensor | None = None) -> torch.Tensor:
        pos, neg = _contributions(layer, a, neg_grad=bool(self.beta))
        out = pos + neg
        with torch.no_grad():
            z = out.detach()
            scale = z / (pos.detach() + self.stabilizer)  # pos >= 0: stab adds +ε
            if self.alpha != 1:
                scale.mul_(self.alpha)
            if self.beta:
                scale_neg = z / (neg.detach() - self.stabilizer)  # neg <= 0
                scale_neg.mul_(-self.beta)
        scale_gradient(pos, scale)
        if self.beta:
            scale_gradient(neg, scale_neg)
        return out


class ZPlus(AlphaBeta):
    """z⁺-rule: ``R_i = Σ_j (a_i W_ji)⁺ / Σ_i' (a_i' W_ji')⁺ R_j`` (αβ with α = 1, β = 0).

    Montavon et al. 2017 ("deep Taylor decomposition"). Cost: two evaluations of the layer.
    """

    def __init__(self, stabilizer: float = 1e-6) -> None:
        super().__init__(1.0, 0.0, stabilizer)

    def __repr__(self) -> str:
        return f"ZPlus(stabilizer={self.stabilizer!r})"


class Gamma(Rule):
    """γ-rule: ``R_i = Σ_j a_i (W_ji + γ W⁺_ji) / Σ_i' a_i' (W_ji' + γ W⁺_ji') R_j``.

    For outputs ``z_j > 0`` positive contributions are boosted by ``1 + γ``, for ``z_j < 0`` the
    negative ones (as Zennit does); γ → ∞ approaches z⁺, γ = 0 is LRP-0. Cost: two evaluations
    of the layer (four with negative inputs). Montavon et al. 2019, "Layer-Wise Relevance
    Propagation: An Overview".
    """

    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6) -> None:
        if not gamma >= 0:
            raise InputError(f"gamma must be >= 0, got {gamma!r}")
        self.gamma, self.stabilizer = float(gamma), float(stabilizer)

    def __call__(self, layer: Affine, a: torch.Tensor, sink: torch.Tensor | None = None) -> torch.Tensor:
        pos, neg = _contributions(layer, a, neg_grad=True)
        out = pos + neg
        g, eps = self.gamma, self.stabilizer
        with torch.no_grad():
            z, p, n = out.detach(), pos.detach(), neg.detach()
            up = torch.where(z > 0, z / (z + g * p + eps), 0.0)  # z + γ·pos > 0 where z > 0
            down = torch.where(z < 0, z / (z + g * n - eps), 0.0)
            scale_pos = (1 + g) * up + down
            scale_neg = up + (1 + g) * down
        scale_gradient(pos, scale_pos)
        scale_gradient(neg, scale_neg)
        return out


class _InputRule(Rule):
    """A rule whose relevance is not ``a ⊙ something``: it writes into the sink."""

    input_rule = True

    @abc.abstractmethod
    def _numerator(self, layer: Affine, a: torch.Tensor, sink: torch.Tensor) -> torch.Tensor:
        """The rule's numerator weights, applied to the sink."""

    @abc.abstractmethod
    def _denominator(self, layer: Affine, a: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The rule's normalising denominator."""

    def __call__(self, layer: Affine, a: torch.Tensor, sink: torch.Tensor | None = None) -> torch.Tensor:
        if sink is None:  # guarded earlier by the composite resolution; kept for direct use
            raise RuntimeError(f"{type(self).__name__} needs the model input's sink")
        with torch.no_grad():
            a = a.detach()
            z = layer(a)
            scale = z / stabilize(self._denominator(layer, a, z), self.stabilizer)
        # The sink is zeros, so the numerator adds 0 to z: the value is z, the gradient the rule's.
        return z + scale_gradient(self._numerator(layer, a, sink), scale)


class Flat(_InputRule):
    """Flat rule: ``R_i = Σ_j R_j / (number of inputs of j)`` — every weight and input set to one.

    Spreads relevance uniformly over each output's receptive field; used in the first layer
    (``epsilon_plus_flat``). Lapuschkin et al. 2019, "Unmasking Clever Hans predictors".
    """

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = float(stabilizer)

    def _numerator(self, layer, a, sink):
        return layer(sink, torch.ones_like(layer.weight), None)

    def _denominator(self, layer, a, z):  # the same for every row: computed on one
        return layer(torch.ones_like(a[:1]), torch.ones_like(layer.weight), None)


class WSquare(_InputRule):
    """w²-rule: ``R_i = Σ_j W_ji² / Σ_i' W_ji'² R_j`` (the squared bias joins the denominator).

    For unbounded real-valued inputs in the first layer. Montavon et al. 2017.
    """

    def __init__(self, stabilizer: float = 1e-6) -> None:
        self.stabilizer = float(stabilizer)

    def _numerator(self, layer, a, sink):
        return layer(sink, layer.weight ** 2, None)

    def _denominator(self, layer, a, z):
        bias = None if layer.bias is None else layer.bias ** 2
        return layer(torch.ones_like(a[:1]), layer.weight ** 2, bias)


class ZBox(_InputRule):
    """z^B-rule for inputs bounded by ``low ≤ x ≤ high`` (numbers or tensors broadcasting to a row):

    ``R_i = Σ_j (x_i W_ji − l_i W⁺_ji − h_i W⁻_ji) / Σ_i' (x_i' W_ji' − l_i' W⁺_ji' − h_i' W⁻_ji') R_j``.
    Cost: three extra layer evaluations. Montavon et al. 2017.
    """

    def __init__(self, low: Any = 0.0, high: Any = 1.0, stabilizer: float = 1e-6) -> None:
        self.low, self.high, self.stabilizer = low, high, float(stabilizer)

    def _bounds(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def full(v: Any) -> torch.Tensor:
            t = torch.as_tensor(v, dtype=a.dtype, device=a.device)
            if t.dim() and t.dim() < a.dim():  # one row (C, H, W) or per-channel (1, C, 1, 1)
                t = t.reshape((1,) * (a.dim() - t.dim()) + tuple(t.shape))
            return t.expand_as(a)
        return full(self.low), full(self.high)

    def _numerator(self, layer, a, sink):
        low, high = self._bounds(a)
        w = layer.weight
        return (layer(sink * a, w, None) - layer(sink * low, w.clamp(min=0), None)
                - layer(sink * high, w.clamp(max=0), None))

    def _denominator(self, layer, a, z):
        low, high = self._bounds(a)
        if all(torch.as_tensor(v).dim() < a.dim() or torch.as_tensor(v).shape[0] == 1
               for v in (self.low, self.high)):
            low, high = low[:1], high[:1]  # the same bounds for every row: computed on one
        w, b = layer.weight, layer.bias
        return z - layer(low, w.clamp(min=0), _clamp(b, 1)) - layer(high, w.clamp(max=0), _clamp(b, -1))

    def __eq__(self, other: object) -> bool:
        return (type(other) is ZBox and torch.equal(torch.as_tensor(self.low), torch.as_tensor(other.low))
                and torch.equal(torch.as_tensor(self.high), torch.as_tensor(other.high))
                and self.stabilizer == other.stabilizer)

    __hash__ = Rule.__hash__
