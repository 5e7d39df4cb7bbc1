"""Mechanics shared by the attribution methods: setup, baselines, timing."""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from ..errors import BaselineError
from ..model import Model, wrap


def gradient_model(model: Any, method: str, batch_size: int | None) -> Model:
    """Wrap ``model`` and check it gives gradients (``method`` names the caller in errors)."""
    m = wrap(model, batch_size=batch_size)
    m.require_gradients(method)
    return m


def resolve_baseline(baseline: Any, x: torch.Tensor) -> torch.Tensor:
    """The baseline as a tensor of the inputs' full shape (an expanded view, no copy).

    ``None`` means zeros; a number fills every entry; a tensor or array may be one row (shaped
    like ``x[0]``), one per row (shaped like ``x``) or anything that broadcasts to ``x``.
    """
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    try:
        b = baseline.detach() if isinstance(baseline, torch.Tensor) else torch.as_tensor(np.asarray(baseline))
        b = b.to(device=x.device, dtype=x.dtype)
    except (TypeError, ValueError, RuntimeError) as err:
        raise BaselineError(f"the baseline could not be read as numbers: {err}") from err
    if not bool(torch.isfinite(b).all()):
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


def new_seed(seed: int | None) -> int:
    """``seed`` itself, or a fresh one from the OS (the global torch RNG is never touched)."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        return seed
    return int.from_bytes(os.urandom(8), "little") >> 1


def generator(seed: int, device: torch.device) -> torch.Generator:
    """A private generator on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


class Stopwatch:
    """Wall time of a method, for ``Explanation.meta``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start
