"""SmoothGrad and its variants: average a gradient method over noisy copies of each input."""
from __future__ import annotations

from typing import Any

import torch

from .._common import check_choice, check_positive, check_positive_int, generator, new_seed
from ..adapters import gradient_model
from ..errors import PellucidError
from ..explanation import Explanation
from ..model import gather, select_target
from ..registry import get, register

VARIANTS = ("mean", "squared", "var")


@register("smoothgrad", gradients=True, random=True)
def smoothgrad(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    base: str = "saliency",
    samples: int = 50,
    noise: float = 0.15,
    variant: str = "mean",
    seed: int | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    **base_params: Any,
) -> Explanation:
    """SmoothGrad: ``E_ε[A(x + ε)]`` with ``ε ~ N(0, σ²)``, ``σ = noise · (max x − min x)`` per row.

    ``base`` is any registered gradient method (``saliency``, ``gradient_x_input``,
    ``integrated_gradients``, ...); ``base_params`` go to it (``abs=False``, ``steps=16``, ...).
    ``variant``: ``mean`` (SmoothGrad), ``squared`` (``E[A²]``, SmoothGrad²) or ``var``
    (``Var[A]``, VarGrad). The target is chosen at the clean input and kept for every noisy copy.
    Noise comes from a private generator seeded by ``seed``; the global RNG is untouched.

    Cost: ``samples`` times the base method per row, plus one forward pass per row. References:
    Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise"; Adebayo et al. 2018
    (VarGrad); Hooker et al. 2019 (SmoothGrad²).
    """
    info = get(base)
    if not info.gradients or info.random or info.function is smoothgrad:
        raise PellucidError(
            f"smoothgrad's base must be a deterministic gradient method, got {base!r}"
        )
    check_choice(variant, "variant (the SmoothGrad variant)", VARIANTS)
    check_positive_int(samples, "samples")
    check_positive(noise, "noise (a fraction of each row's value range)", allow_zero=True)
    used_seed = new_seed(seed)
    m = gradient_model(model, "smoothgrad", batch_size)
    with m.explaining():
        x = m.prepare(inputs, as_float=True)
        n = len(x)
        clean = m.outputs(x, batch_size=batch_size, progress=False)
        t = select_target(clean, target)
        flat = x.reshape(n, -1)
        sigma = noise * (flat.max(dim=1).values - flat.min(dim=1).values)
        shape = (-1,) + (1,) * (x.dim() - 1)
        g = generator(used_seed, x.device)
        total = total_sq = None
        base_meta: dict[str, Any] = {}
        for chunk, _ in m.chunks(n * samples, x.shape[1:], batch_size=batch_size, progress=progress,
                                 desc="smoothgrad"):
            rows = torch.arange(chunk.start, chunk.stop, device=x.device) // samples
            eps = torch.randn((len(rows),) + x.shape[1:], generator=g, device=x.device, dtype=x.dtype)
            noisy = x[rows] + eps * sigma[rows].view(shape)
            noisy_inputs = noisy if m.carried is None else m.carried.rebuild(noisy, rows)
            e = info.function(m, noisy_inputs, target=t[rows], batch_size=batch_size, progress=False,
                              **base_params)
            if total is None:
                total = torch.zeros((n,) + e.values.shape[1:], dtype=e.values.dtype, device=x.device)
                total_sq = torch.zeros_like(total)
                base_meta = {k: 0 for k in ("forward_rows", "backward_rows") if k in e.meta}
            total.index_add_(0, rows, e.values)
            total_sq.index_add_(0, rows, e.values * e.values)
            for k in base_meta:
                base_meta[k] += e.meta[k]
    mean = total / samples
    values = {"mean": mean, "squared": total_sq / samples,
              "var": (total_sq / samples - mean * mean).clamp_min(0)}[variant]
    base_meta["forward_rows"] = base_meta.get("forward_rows", 0) + n
    return Explanation(
        values=values,
        inputs=x,
        target=t,
        outputs=gather(clean, t),
        meta={**base_meta, "seed": used_seed},
    )
