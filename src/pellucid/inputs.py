"""Models with more than one input: which input is explained, and which are carried along.

A model may take several inputs: a tokenizer's ``input_ids`` with their ``attention_mask``
(keyword arguments), or an image with a side vector (positional). Pass them to any gradient
method as a ``dict`` (or a tokenizer's ``BatchEncoding``) of keyword inputs or a ``tuple`` of
positional ones, or as :class:`ModelInputs` to say which one is explained. The explained input
is attributed; every other tensor with one row per input row is *carried*: sliced with its rows
in every chunk and repeated alongside every path point or noisy copy, so an attention mask always
travels with its ids. Values that are not such tensors (``None``, flags, a shared tensor) are
passed unchanged.

Which input is explained, unless :class:`ModelInputs` says: the only floating-point one if there
is exactly one, else ``input_ids``, ``inputs_embeds`` or ``pixel_values`` when present.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from .errors import InputError

__all__ = ["ModelInputs", "Carried", "split_inputs", "EXPLAINED_BY_DEFAULT"]

#: Keys explained by default when more than one input is floating (or none is).
EXPLAINED_BY_DEFAULT = ("input_ids", "inputs_embeds", "pixel_values")


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """Several model inputs and the one to explain.

    ``inputs`` is a mapping of keyword inputs or a tuple of positional ones; ``explain`` a key
    (keyword inputs) or a position (positional ones). ``ModelInputs(encoding, explain="input_ids")``
    explains the ids and carries the mask.
    """

    inputs: Mapping[str, Any] | tuple
    explain: str | int | None = None


@dataclasses.dataclass
class Carried:
    """The inputs that travel with the explained one: how to call the model with a batch of the
    explained input whose rows came from original rows ``rows``."""

    key: str | int
    values: dict[str | int, Any]
    keyword: bool
    n: int

    def arguments(self, x: torch.Tensor, rows: Any) -> tuple[tuple, dict]:
        """``(args, kwargs)`` for the model: ``x`` in the explained place, every carried tensor
        at ``rows`` (a slice or an index tensor of original rows)."""
        if rows is None:
            if len(x) != self.n:
                raise InputError(
                    f"internal: a batch of {len(x)} rows was run without saying which of the "
                    f"{self.n} input rows it came from")
            rows = slice(None)
        parts = {k: (v[rows] if _per_row(v, self.n) else v) for k, v in self.values.items()}
        parts[self.key] = x
        if self.keyword:
            return (), parts
        return tuple(parts[i] for i in range(len(parts))), {}

    def rebuild(self, x: torch.Tensor, rows: Any) -> dict | tuple:
        """The inputs as the user gave them, with ``x`` explained and the others at ``rows`` (for
        a method that runs another method on derived rows, such as SmoothGrad's noisy copies)."""
        args, kwargs = self.arguments(x, rows)
        return ModelInputs(kwargs if self.keyword else args, explain=self.key)


def _per_row(value: Any, n: int) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() > 0 and len(value) == n


def _describe(values: Mapping) -> str:
    return ", ".join(
        f"{k!r} {tuple(v.shape)} {str(v.dtype).replace('torch.', '')}" if isinstance(v, torch.Tensor)
        else f"{k!r} {type(v).__name__}" for k, v in values.items())


def split_inputs(inputs: Any, to_tensor: Any) -> tuple[Any, Carried | None]:
    """``(explained input, Carried or None)`` from what the user passed: a single input comes
    back as it is, with no carried inputs; several are converted with ``to_tensor(value, name)``
    (numbers to tensors on the model's device) and checked."""
    explain = None
    if isinstance(inputs, ModelInputs):
        inputs, explain = inputs.inputs, inputs.explain
    if isinstance(inputs, Mapping):
        keyword, items = True, dict(inputs)
    elif isinstance(inputs, tuple):
        keyword, items = False, dict(enumerate(inputs))
    else:
        if explain is not None:
            raise InputError("explain= names one of several inputs; pass them as a dict or a tuple")
        return inputs, None
    if not items:
        raise InputError("the inputs are an empty dict or tuple; give the model's inputs")
    values = {k: (to_tensor(v, f"input {k!r}") if _array_like(v) else v) for k, v in items.items()}
    key = _explained(values, explain)
    n = len(values[key]) if values[key].dim() > 0 else 0
    for k, v in values.items():
        if isinstance(v, torch.Tensor) and v.dim() > 0 and len(v) != n and k != key:
            raise InputError(
                f"input {k!r} has {len(v)} rows but the explained input {key!r} has {n}; every "
                f"input must have one row per explained row (inputs: {_describe(values)})")
    mask = values.get("attention_mask")
    ids = values.get("input_ids")
    if isinstance(mask, torch.Tensor) and isinstance(ids, torch.Tensor) and mask.shape != ids.shape:
        raise InputError(
            f"attention_mask is shaped {tuple(mask.shape)} but input_ids {tuple(ids.shape)}; pass "
            "the mask the tokenizer made for these ids")
    explained = values.pop(key)
    return explained, Carried(key, values, keyword, n)


def _array_like(value: Any) -> bool:
    return isinstance(value, torch.Tensor) or hasattr(value, "__array__") or (
        isinstance(value, list) and bool(value) and not isinstance(value[0], str))


def _explained(values: dict, explain: Any) -> str | int:
    if explain is not None:
        if explain not in values:
            raise InputError(f"explain={explain!r} names no input; the inputs are: {_describe(values)}")
        if not isinstance(values[explain], torch.Tensor):
            raise InputError(f"explain={explain!r} names a {type(values[explain]).__name__}, not a "
                             "tensor of rows")
        return explain
    floating = [k for k, v in values.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if len(floating) == 1:
        return floating[0]
    for key in EXPLAINED_BY_DEFAULT:
        if isinstance(values.get(key), torch.Tensor):
            return key
    raise InputError(
        f"several inputs and no way to tell which one to explain: {_describe(values)}. Pass "
        "pellucid.ModelInputs(inputs, explain=<key or position>)")
