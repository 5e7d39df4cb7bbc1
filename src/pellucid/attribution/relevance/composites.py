"""Composites: which LRP rule each linear layer gets.

A :class:`Composite` maps layers to rules by name (``"features.0"``), by type
(``torch.nn.Conv2d``) or by position (``first`` — the first linear layer the input meets,
``dense`` — Linear layers, ``conv`` — convolutions). The most specific entry wins:
name, then first, then type (closest class in the MRO), then dense / conv, then ``default``
(the z-rule, LRP-0). A plain dict ``{name or type: rule}`` is a composite too.

Built-ins (the names Zennit users know, with Zennit's defaults ε = 1e-6, stabiliser 1e-6, γ = 0.25):

======================  ================  ======================  ===============
composite               first layer       conv layers             dense layers
======================  ================  ======================  ===============
``epsilon``             Epsilon           Epsilon                 Epsilon
``epsilon_plus``        (conv / dense)    ZPlus                   Epsilon
``epsilon_plus_flat``   Flat              ZPlus                   Epsilon
``epsilon_gamma_box``   ZBox(low, high)   Gamma(0.25)             Epsilon
``epsilon_alpha2_beta1`` (conv / dense)   AlphaBeta(2, 1)         Epsilon
``alpha1_beta0``        (conv / dense)    AlphaBeta(1, 0)         AlphaBeta(1, 0)
======================  ================  ======================  ===============

``epsilon_gamma_box`` needs the input bounds: ``lrp(..., low=, high=)``; without them the
smallest and largest value in the explained batch are used.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ...errors import InputError, LayerError
from .rules import AlphaBeta, Epsilon, Flat, Gamma, Rule, ZBox, Zero, ZPlus

__all__ = ["Composite", "BUILTIN", "resolve", "epsilon", "epsilon_plus", "epsilon_plus_flat",
           "epsilon_gamma_box", "epsilon_alpha2_beta1", "alpha1_beta0"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class Composite:
    """Rules for a model's linear layers, chosen by name, type or position.

    ``rules``: a dict whose keys are layer names (exact qualified names as in
    ``model.named_modules()``) or module types, and whose values are :mod:`rules` objects.
    ``first``, ``conv``, ``dense``: rules for the first layer, for convolutions, for Linear
    layers. ``default``: for any other linear layer (z-rule). ``pool_stabilizer``: the ε of the
    z-rule average pooling gets (Zennit's ``Norm``; 0 makes pooling exactly conservative).

    >>> import torch
    >>> from pellucid.attribution.relevance import rules
    >>> c = Composite({torch.nn.Conv2d: rules.Gamma(0.25)}, first=rules.ZBox(0, 1),
    ...               dense=rules.Epsilon(1e-6))
    """

    def __init__(self, rules: Mapping[Any, Rule] | None = None, *, first: Rule | None = None,
                 conv: Rule | None = None, dense: Rule | None = None,
                 default: Rule | None = None, pool_stabilizer: float = 1e-6,
                 name: str = "custom") -> None:
        self.by_name: dict[str, Rule] = {}
        self.by_type: dict[type, Rule] = {}
        for key, rule in (rules or {}).items():
            _check_rule(rule, key)
            if isinstance(key, str):
                self.by_name[key] = rule
            elif isinstance(key, type):
                self.by_type[key] = rule
            else:
                raise InputError(f"a composite's keys are layer names or module types, got {key!r}")
        for label, rule in (("first", first), ("conv", conv), ("dense", dense), ("default", default)):
            if rule is not None:
                _check_rule(rule, label)
        self.first, self.conv, self.dense = first, conv, dense
        self.default = default if default is not None else Zero()
        self.pool_stabilizer = float(pool_stabilizer)
        self.name = name

    def __repr__(self) -> str:
        parts = [f"{k!r}: {v!r}" for k, v in self.by_name.items()]
        parts += [f"{k.__name__}: {v!r}" for k, v in self.by_type.items()]
        extra = "".join(f", {n}={getattr(self, n)!r}" for n in ("first", "conv", "dense")
                        if getattr(self, n) is not None)
        return f"Composite({{{', '.join(parts)}}}{extra}, name={self.name!r})"

    def check_names(self, names: list[str]) -> None:
        """Raise :class:`LayerError` for a name key that is not a linear layer of the model."""
        unknown = [n for n in self.by_name if n not in names]
        if unknown:
            shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
            raise LayerError(
                f"the composite names layer(s) {', '.join(map(repr, unknown))}, which the model "
                f"has not (or which are not Linear/Conv layers); its linear layers are: {shown}")

    def rule_for(self, name: str, kind: type, *, first: bool) -> Rule:
        """The rule of the layer ``name`` of type ``kind`` (``first``: the first linear layer)."""
        if name in self.by_name:
            return self.by_name[name]
        if first and self.first is not None:
            return self.first
        for cls in kind.__mro__:
            if cls in self.by_type:
                return self.by_type[cls]
        for cls, rule in self.by_type.items():  # abstract bases / registered subclasses
            if issubclass(kind, cls):
                return rule
        if self.conv is not None and issubclass(kind, _CONV):
            return self.conv
        if self.dense is not None and issubclass(kind, nn.Linear):
            return self.dense
        return self.default


def _check_rule(rule: Any, key: Any) -> None:
    if not isinstance(rule, Rule):
        raise InputError(f"the composite maps {key!r} to {rule!r}, which is not an LRP rule "
                        "(pellucid.attribution.relevance.rules: Epsilon, Zero, ZPlus, AlphaBeta, Gamma, "
                        "Flat, WSquare, ZBox)")


def epsilon(epsilon: float = 1e-6, **_: Any) -> Composite:
    """ε-rule everywhere."""
    return Composite(conv=Epsilon(epsilon), dense=Epsilon(epsilon), name="epsilon")


def epsilon_plus(epsilon: float = 1e-6, stabilizer: float = 1e-6, **_: Any) -> Composite:
    """z⁺ for convolutions, ε for dense layers."""
    return Composite(conv=ZPlus(stabilizer), dense=Epsilon(epsilon), name="epsilon_plus")


def epsilon_plus_flat(epsilon: float = 1e-6, stabilizer: float = 1e-6, **_: Any) -> Composite:
    """Flat for the first layer, z⁺ for convolutions, ε for dense layers (Zennit's default)."""
    return Composite(first=Flat(stabilizer), conv=ZPlus(stabilizer), dense=Epsilon(epsilon),
                     name="epsilon_plus_flat")


def epsilon_gamma_box(low: Any = 0.0, high: Any = 1.0, gamma: float = 0.25, epsilon: float = 1e-6,
                      stabilizer: float = 1e-6, **_: Any) -> Composite:
    """ZBox(low, high) for the first layer, γ for convolutions, ε for dense layers."""
    return Composite(first=ZBox(low, high, stabilizer), conv=Gamma(gamma, stabilizer),
                     dense=Epsilon(epsilon), name="epsilon_gamma_box")


def epsilon_alpha2_beta1(epsilon: float = 1e-6, stabilizer: float = 1e-6, **_: Any) -> Composite:
    """αβ (α = 2, β = 1) for convolutions, ε for dense layers."""
    return Composite(conv=AlphaBeta(2, 1, stabilizer), dense=Epsilon(epsilon),
                     name="epsilon_alpha2_beta1")


def alpha1_beta0(stabilizer: float = 1e-6, **_: Any) -> Composite:
    """αβ with α = 1, β = 0 (= z⁺) for every linear layer."""
    rule = AlphaBeta(1, 0, stabilizer)
    return Composite(conv=rule, dense=rule, name="alpha1_beta0")


BUILTIN = {f.__name__: f for f in (epsilon, epsilon_plus, epsilon_plus_flat, epsilon_gamma_box,
                                   epsilon_alpha2_beta1, alpha1_beta0)}


def resolve(composite: Any, **options: Any) -> Composite:
    """A :class:`Composite` from a built-in name (``options`` go to it), a dict or a Composite."""
    if isinstance(composite, Composite):
        return composite
    if isinstance(composite, str):
        try:
            return BUILTIN[composite](**options)
        except KeyError:
            raise InputError(f"unknown composite {composite!r}; built-ins: "
                             f"{', '.join(BUILTIN)}, or pass a dict / Composite") from None
    if isinstance(composite, Mapping):
        return Composite(composite)
    raise InputError(f"composite must be a name ({', '.join(BUILTIN)}), a dict of rules or a "
                    f"Composite, got {composite!r}")
