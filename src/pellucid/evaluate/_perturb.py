"""Mechanics shared by the metrics that read the model again.

A metric takes the ``Explanation`` it scores plus the model, puts the explanation's rows on the
model's device and resolves its seed (:func:`setup`), reads the attribution per unit
(:func:`unit_scores`: whole pixels for images), builds perturbed rows chunk by chunk and reads the
explained output of each (:func:`explained_output`). Random perturbations come from
:func:`seeded_rows`, whose draws do not depend on how the work is chunked, so a seed gives the same
score at every ``batch_size``. Metrics that run the explanation's method again (robustness, the
randomisation tests) get it from :func:`rerun`.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from .._common import check_choice, generator, new_seed, resolve_baseline
from ..adapters import wrap
from ..errors import BaselineError, InputError, PellucidError
from ..explanation import Explanation
from ..model import Model, gather
from ..registry import get

__all__ = [
    "OUTPUTS", "Setup", "setup", "unit_scores", "values_like_inputs", "resolve_output",
    "explained_output", "seeded_rows", "baseline_rows", "gaussian_blur", "require_floating",
    "rerun", "accepts",
]

OUTPUTS = ("probability", "logit")
BASELINES = ("blur", "mean", "uniform")

# Random draws are made in blocks of this many perturbed rows, each block from its own generator
# seeded by (seed, block index): a chunk of any size draws the blocks it overlaps and slices them.
_DRAW_BLOCK = 16

T = TypeVar("T")


class Setup(NamedTuple):
    """What a metric works on: the model, the explanation's ``inputs``, ``target`` and ``values``
    on the model's device, and the ``seed`` its random draws use (the one given, or a fresh one)."""

    model: Model
    inputs: torch.Tensor
    target: torch.Tensor
    values: torch.Tensor
    seed: int


def setup(
    model: Any, explanation: Explanation, *, metric: str, seed: int | None = None,
    batch_size: int | None = None,
) -> Setup:
    """The explanation's rows on the model's device, checked against each other, and the seed."""
    if not isinstance(explanation, Explanation):
        raise TypeError(
            f"{metric} scores a pellucid Explanation (what every method returns), got "
            f"{type(explanation).__name__}"
        )
    m = wrap(model, batch_size=batch_size)
    x = m.prepare(explanation.inputs, name="the explanation's inputs")
    t = explanation.target.to(device=m.device, dtype=torch.long)
    values = explanation.values.detach().to(m.device)
    if not values.is_floating_point():
        values = values.to(m.dtype)
    if len(values) != len(x) or len(t) != len(x):
        raise InputError(
            f"the explanation has {len(x)} input rows but {len(values)} rows of values and "
            f"{len(t)} targets; build it with a pellucid method or keep the three aligned"
        )
    return Setup(m, x, t, values, new_seed(seed))


def unit_scores(values: torch.Tensor, x: torch.Tensor, metric: str) -> torch.Tensor:
    """The attribution of each unit that is removed as a whole, broadcastable to ``x``.

    Images ``(n, C, H, W)``: one score per pixel, ``(n, 1, H, W)``, the sum over channels, so a
    pixel is removed in all its channels at once. A CAM-shaped map ``(n, 1, h, w)`` is used as it
    is, enlarged to ``H x W`` (nearest neighbour) when it is smaller. Other inputs: one score per
    entry, ``values`` shaped like ``x``.
    """
    if x.dim() == 4:
        if values.dim() != 4 or values.shape[1] not in (1, x.shape[1]):
            raise InputError(
                f"{metric}: attributions of images shaped {tuple(x.shape[1:])} must be shaped "
                f"(C, H, W) or (1, h, w) per row; got {tuple(values.shape[1:])}"
            )
        v = values.sum(dim=1, keepdim=True) if values.shape[1] > 1 else values
        if v.shape[2:] != x.shape[2:]:
            v = F.interpolate(v, size=x.shape[2:], mode="nearest")
        return v
    if values.shape != x.shape:
        raise InputError(
            f"{metric} needs attributions shaped like the inputs {tuple(x.shape)}; got "
            f"{tuple(values.shape)}"
        )
    return values


def values_like_inputs(values: torch.Tensor, x: torch.Tensor, metric: str) -> torch.Tensor:
    """``values`` broadcast to the inputs' shape (a CAM map is spread over the channels)."""
    if values.shape == x.shape:
        return values
    return unit_scores(values, x, metric).expand_as(x)


def resolve_output(output: str | None, columns: int) -> str:
    """``output``, or for ``None``: ``probability`` for a multi-column model, else ``logit``."""
    if output is None:
        return "probability" if columns > 1 else "logit"
    check_choice(output, "output", OUTPUTS)
    if output == "probability" and columns == 1:
        raise InputError(
            "output='probability' applies a softmax over the model's columns, but this model has "
            "a single output; use output='logit' to read it as it is"
        )
    return output


def explained_output(out: torch.Tensor, target: torch.Tensor, output: str) -> torch.Tensor:
    """The explained column of ``out``: the raw value, or its softmax probability."""
    if output == "probability":
        out = torch.softmax(out.float() if out.dtype in (torch.float16, torch.bfloat16) else out, 1)
    return gather(out, target)


@functools.lru_cache(maxsize=4096)
def _block_seed(seed: int, block: int, stream: int) -> int:
    state = np.random.SeedSequence([seed, stream, block]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def seeded_rows(
    seed: int, start: int, stop: int, draw: Callable[[torch.Generator, int], torch.Tensor],
    device: torch.device, *, stream: int = 0,
) -> torch.Tensor:
    """Rows ``start:stop`` of an endless seeded sequence of random rows.

    ``draw(generator, rows)`` makes ``rows`` rows. The sequence is cut in blocks of a fixed size,
    each drawn from a generator seeded by ``(seed, stream, block)``, so the rows are the same
    however the range is chunked (torch's normal sampler, for one, does not split a stream
    consistently). Different ``stream`` numbers give independent sequences from one seed.
    """
    b0, b1 = start // _DRAW_BLOCK, (stop - 1) // _DRAW_BLOCK
    parts = [draw(generator(_block_seed(seed, b, stream), device), _DRAW_BLOCK)
             for b in range(b0, b1 + 1)]
    offset = start - b0 * _DRAW_BLOCK
    return torch.cat(parts)[offset:offset + stop - start]


def gaussian_blur(x: torch.Tensor, size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Each channel blurred with a ``size x size`` Gaussian of width ``sigma`` (zero padding).

    The kernel and padding of RISE's insertion baseline (Petsiuk et al. 2018, their code's
    ``gkern(11, 5)`` applied by ``conv2d(..., padding=5)``).
    """
    half = size // 2
    grid = torch.arange(size, device=x.device, dtype=x.dtype) - half
    g = torch.exp(-(grid ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    channels = x.shape[1]
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, size, size)
    return F.conv2d(x, kernel, padding=half, groups=channels)


def baseline_rows(
    baseline: Any, x: torch.Tensor, *, seed: int | None, metric: str
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The value every removed entry takes, shaped like ``x``, and what to record about it.

    A number, a tensor (one row, one per row, or anything broadcasting to ``x``), or:
    ``"blur"`` (images: RISE's Gaussian-blurred copy), ``"mean"`` (each row's mean, per channel
    for images), ``"uniform"`` (uniform noise between each row's minimum and maximum, drawn once
    per row from ``seed``, so a removed entry keeps its value from step to step).
    """
    if not isinstance(baseline, str):
        if baseline is None:
            raise BaselineError(
                f"{metric} needs a baseline: a number, a tensor or one of {BASELINES}")
        return resolve_baseline(baseline, x), {"baseline": _describe(baseline)}
    if baseline not in BASELINES:
        raise BaselineError(
            f"unknown baseline {baseline!r}; use a number, a tensor or one of {BASELINES}")
    if not x.is_floating_point():
        raise BaselineError(f"baseline={baseline!r} needs floating inputs, got {x.dtype}")
    if baseline == "blur":
        if x.dim() != 4:
            raise BaselineError("baseline='blur' needs images shaped (n, C, H, W)")
        return gaussian_blur(x), {"baseline": "blur"}
    dims = tuple(range(2, x.dim())) if x.dim() == 4 else tuple(range(1, x.dim()))
    if baseline == "mean":
        return x.mean(dim=dims, keepdim=True).expand_as(x), {"baseline": "mean"}
    used = new_seed(seed)
    flat = x.reshape(len(x), -1)
    low = flat.min(dim=1).values.view((-1,) + (1,) * (x.dim() - 1))
    high = flat.max(dim=1).values.view((-1,) + (1,) * (x.dim() - 1))
    u = seeded_rows(used, 0, len(x), lambda g, k: torch.rand(
        (k,) + x.shape[1:], generator=g, device=x.device, dtype=x.dtype), x.device, stream=1)
    return low + u * (high - low), {"baseline": "uniform", "seed": used}


def _describe(baseline: Any) -> Any:
    if isinstance(baseline, (int, float)):
        return float(baseline)
    return f"tensor{tuple(getattr(baseline, 'shape', ()))}"


def require_floating(x: torch.Tensor, metric: str) -> None:
    """Noise-based metrics need real-valued inputs (not token ids)."""
    if not x.is_floating_point():
        raise PellucidError(
            f"{metric} adds noise to the inputs, so it needs floating inputs; got {x.dtype} "
            "(token ids cannot be perturbed continuously)"
        )


def rerun(explanation: Explanation, metric: str) -> tuple[Callable[..., Explanation], dict[str, Any]]:
    """The registered method that made ``explanation`` and the options it used, to run it again
    (the target and the progress bar are the caller's to give)."""
    if not explanation.method:
        raise PellucidError(
            f"{metric} re-runs the explanation's method, but this explanation names no method; "
            "build it with a registered pellucid method"
        )
    params = {k: v for k, v in explanation.params.items() if k not in ("target", "progress")}
    return get(explanation.method).function, params


def accepts(function: Callable[..., Any], name: str) -> bool:
    """Whether ``function`` has a parameter called ``name`` (``**kwargs`` does not count)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters and parameters[name].kind is not inspect.Parameter.VAR_KEYWORD


