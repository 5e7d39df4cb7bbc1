"""Small mechanics every package shares: clocks, progress bars, seeds and generators, baselines,
and the checks of user-given options.

Each check returns the value it accepted (normalised: an ``int`` for integers, a ``float`` for
numbers) and raises only :mod:`pellucid.errors` exceptions whose message names the option, what
was given and what is accepted. A method calls them at its top, before the model runs.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np
import torch

from .errors import BaselineError, InputError, ModelError

__all__ = [
    "Stopwatch", "progress_enabled", "progress_bar", "new_seed", "generator", "resolve_baseline",
    "check_positive_int", "check_positive", "check_fraction", "check_choice", "require_classes",
]


class Stopwatch:
    """Wall time since creation, for ``meta["seconds"]``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start


T = TypeVar("T")


def progress_enabled(progress: bool | None) -> bool:
    """``progress`` if given, else on unless ``PELLUCID_PROGRESS=0``."""
    if progress is not None:
        return bool(progress)
    return os.environ.get("PELLUCID_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def progress_bar(items: Iterable[T], progress: bool | None, desc: str, *, unit: str = "it",
                 total: int | None = None) -> Iterable[T]:
    """``items`` behind a tqdm bar that appears only on runs longer than two seconds, or ``items``
    itself when progress is off (``progress=False`` or ``PELLUCID_PROGRESS=0``)."""
    if not progress_enabled(progress):
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit, total=total, delay=2.0, leave=False)


def new_seed(seed: int | None) -> int:
    """``seed`` itself, or a fresh one from the OS (the global torch RNG is never touched)."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InputError(f"seed must be an int or None, got {seed!r}")
        return int(seed)
    return int.from_bytes(os.urandom(8), "little") >> 1


def generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A private generator on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def resolve_baseline(baseline: Any, x: torch.Tensor) -> torch.Tensor:
    """The baseline as a tensor of the inputs' full shape (an expanded view, no copy).

    ``None`` means zeros; a number fills every entry; a tensor or array may be one row (shaped
    like ``x[0]``), one per row (shaped like ``x``) or anything that broadcasts to ``x``.
    """
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, (int, float, np.integer, np.floating)) and not isinstance(baseline, bool):
        if not math.isfinite(float(baseline)):
            raise BaselineError(f"the baseline must be finite, got {baseline!r}")
        return torch.full_like(x, float(baseline))
    try:
        b = baseline.detach() if isinstance(baseline, torch.Tensor) else torch.as_tensor(np.asarray(baseline))
        b = b.to(device=x.device, dtype=x.dtype)
    except (TypeError, ValueError, RuntimeError) as err:
        raise BaselineError(f"the baseline could not be read as numbers: {err}") from err
    if b.is_floating_point() and not bool(torch.isfinite(b).all()):
        raise BaselineError("the baseline contains NaN or inf values")
    try:
        shape = torch.broadcast_shapes(b.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape:
        raise BaselineError(
            f"a baseline of shape {tuple(b.shape)} does not broadcast to the inputs' shape "
            f"{tuple(x.shape)}; give one row shaped {tuple(x.shape[1:])}, one per row shaped "
            f"{tuple(x.shape)}, or a number"
        )
    return b.expand_as(x)


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an ``int`` of at least ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InputError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a finite ``float`` > 0 (>= 0 with ``allow_zero``)."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(float(value))
        and (float(value) >= 0 if allow_zero else float(value) > 0)
    )
    if not ok:
        what = "a finite number >= 0" if allow_zero else "a positive finite number"
        raise InputError(f"{name} must be {what}, got {value!r}")
    return float(value)


def check_fraction(value: Any, name: str, *, closed: bool = True, allow_zero: bool = False) -> float:
    """``value`` as a ``float`` in (0, 1] (the upper end open unless ``closed``; the lower end
    closed with ``allow_zero``)."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and (0 <= float(value) if allow_zero else 0 < float(value))
        and (float(value) <= 1 if closed else float(value) < 1)
    )
    if not ok:
        interval = ("[0, " if allow_zero else "(0, ") + ("1]" if closed else "1)")
        raise InputError(f"{name} must be a fraction in {interval}, got {value!r}")
    return float(value)


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, (str, int, type(None))) or value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise InputError(f"{name} must be one of {shown}; got {value!r}")
    return value


def require_classes(outputs: torch.Tensor, model_name: str, purpose: str) -> None:
    """Refuse a model with a single output where ``purpose`` needs class logits ``(n, k >= 2)``."""
    if outputs.dim() != 2 or outputs.shape[1] < 2:
        raise ModelError(
            f"{model_name} has a single output; {purpose} needs class logits (n, classes >= 2). "
            "Wrap a one-logit binary model as torch.cat([-z, z], 1) / 2."
        )
