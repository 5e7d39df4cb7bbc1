"""Image parameterizations and random transformations for :func:`~pellucid.features.maximize`.

Parameterizations (Olah et al. 2017, "Feature Visualization", Distill; Lucent's ``param``):

- ``"pixel"``: the image is ``σ(z)`` of free pixels ``z`` (scaled to ``value_range``);
- ``"fft"``: ``z`` is the inverse real FFT of a spectrum whose coefficients are scaled by ``1/f``
  (frequency ``f``), so gradient steps move all frequencies alike and high-frequency noise — the
  adversarial patterns that plague pixel optimisation — is not favoured.

For three channels the colours are also decorrelated (Lucent's ImageNet colour-correlation
square root), so one step moves along natural colour directions.

Transformations (robustness to them keeps the image from exploiting single pixels): one random
affine map per image per step — jitter (translation), scale and rotation — applied by a single
``grid_sample`` call over the batch. ``"standard"`` mirrors Lucent's standard transforms scaled
to the image: jitter of ±5% of the side (12 px of 224), scale 0.95–1.05, rotation ±5°.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._common import check_choice
from ..errors import InputError

__all__ = ["image_param", "make_transform", "PARAMS", "STANDARD"]

PARAMS = ("fft", "pixel")
STANDARD = {"jitter": 12 / 224, "scale": (0.95, 1.05), "rotate": 5.0}

_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


def image_param(
    kind: str, shape: tuple[int, ...], *, generator: torch.Generator, device: torch.device,
    dtype: torch.dtype, value_range: tuple[float, float] = (0.0, 1.0), decorrelate: bool = True,
    sd: float = 0.01,
) -> tuple[torch.Tensor, Callable[[], torch.Tensor]]:
    """``(parameter tensor, image())``: ``image()`` maps the parameter to images ``shape`` in range."""
    check_choice(kind, "param", PARAMS)
    if len(shape) != 4:
        raise InputError(f"maximize draws images shaped (channels, height, width); got {shape[1:]}")
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise InputError(f"value_range must be (low, high) with high > low; got {value_range!r}")
    n, c, h, w = shape
    if kind == "pixel":
        z = torch.randn(shape, generator=generator, dtype=dtype) * sd
        z = z.to(device).requires_grad_(True)
        spatial: Callable[[], torch.Tensor] = lambda: z
    else:
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        freqs = np.sqrt(fx * fx + fy * fy)
        scale = torch.as_tensor(1.0 / np.maximum(freqs, 1.0 / max(h, w)), dtype=dtype,
                                device=device)
        z = torch.randn((n, c, h, w // 2 + 1, 2), generator=generator, dtype=dtype) * sd
        z = z.to(device).requires_grad_(True)
        # Lucent divides by a "magic" 4 so the initial image has a small spread.
        spatial = lambda: torch.fft.irfft2(
            torch.view_as_complex(z) * scale, s=(h, w), norm="ortho") / 4.0
    color = _COLOR.to(device=device, dtype=dtype) if decorrelate and c == 3 else None

    def image() -> torch.Tensor:
        x = spatial()
        if color is not None:
            x = torch.einsum("nchw,dc->ndhw", x, color)
        return lo + (hi - lo) * torch.sigmoid(x)
    return z, image


def make_transform(
    transforms: Any, size: tuple[int, int], generator: torch.Generator
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function applying a random jitter/scale/rotation per image (or the identity).

    ``transforms``: ``"standard"``, ``None``/``"none"``, a dict with any of ``jitter`` (share
    of the side), ``scale`` ((low, high)) and ``rotate`` (degrees), or a callable ``x -> x``.
    """
    if callable(transforms):
        return transforms
    if transforms is None or transforms == "none":
        return lambda x: x
    if transforms == "standard":
        spec = STANDARD
    elif isinstance(transforms, dict):
        unknown = set(transforms) - set(STANDARD)
        if unknown:
            raise InputError(f"unknown transforms {sorted(unknown)}; use jitter, scale, rotate")
        spec = {"jitter": 0.0, "scale": (1.0, 1.0), "rotate": 0.0, **transforms}
    else:
        raise InputError(
            f"transforms must be 'standard', None, a dict(jitter=, scale=, rotate=) or a callable; "
            f"got {transforms!r}")
    jitter = float(spec["jitter"])
    s_lo, s_hi = (float(v) for v in spec["scale"])
    rot = math.radians(float(spec["rotate"]))

    def transform(x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        u = torch.rand(n, 4, generator=generator, dtype=x.dtype).to(x.device)
        angle = (2 * u[:, 0] - 1) * rot
        scale = s_lo + (s_hi - s_lo) * u[:, 1]
        shift = (2 * u[:, 2:] - 1) * jitter * 2  # grid coordinates span 2 per side
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)
    return transform


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, per image: ``(n,)``."""
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    return dx + dy
