"""Class activation maps from gradients: Grad-CAM and Grad-CAM++.

Both read the activations ``A`` of a chosen layer (``(n, C, *spatial)``) and the gradient
``g = ∂y_t/∂A`` of the explained output, weight the channels and keep the positive part.
Cost: one forward and one backward pass per row (the backward stops at the layer).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._hooks import capture, layer_key
from ..adapters import gradient_model
from ..errors import InputError, LayerError
from ..explanation import Explanation
from ..model import Model, gather, select_target
from ..registry import register

_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def layer_activation_gradients(
    m: Model, x: torch.Tensor, layer: str | nn.Module, target: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For one chunk: ``(A, ∂y_t/∂A, y_t, t)`` at ``layer``'s output, in one forward/backward."""
    with capture(m, [layer]) as (run, seen), torch.enable_grad():
        (name,) = seen
        out = m.forward(x.detach().requires_grad_(True))
        t = select_target(out, target)
        y = gather(out, t)
        run.check_once(name)
        (grad,) = torch.autograd.grad(y.sum(), seen[name][0])
    return seen[name][0].detach(), grad.detach(), y.detach(), t


def _cam(
    name: str,
    channel_weights: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    model: Any,
    inputs: Any,
    *,
    layer: str | nn.Module,
    target: Any,
    upsample: bool,
    relu: bool,
    batch_size: int | None,
    progress: bool | None,
) -> Explanation:
    m = gradient_model(model, name, batch_size)
    key = layer_key(m, layer)
    with m.explaining():
        x = m.prepare(inputs, as_float=True)
        maps, outputs, targets = [], [], []
        for rows, t in m.chunks(len(x), x.shape[1:], target=target, batch_size=batch_size,
                                progress=progress, desc=name):
            acts, grads, y, tt = layer_activation_gradients(m, x[rows], key, t)
            if acts.dim() < 3:
                raise LayerError(
                    f"{name} needs a layer whose output has channels and spatial dimensions "
                    f"(n, C, H, W) or (n, C, L); {key!r} gives shape "
                    f"{tuple(acts.shape)}. Pick a convolutional layer."
                )
            weights = channel_weights(acts, grads)
            cam = torch.einsum("nc...,nc->n...", acts, weights)
            maps.append(cam.clamp_min(0) if relu else cam)
            outputs.append(y)
            targets.append(tt)
    cams = torch.cat(maps)[:, None]
    layer_shape = tuple(cams.shape[2:])
    if upsample and cams.shape[2:] != x.shape[2:]:
        if x.dim() != cams.dim():
            raise InputError(
                f"cannot upsample a {len(layer_shape)}-D map to inputs shaped "
                f"{tuple(x.shape[1:])}; use upsample=False"
            )
        cams = F.interpolate(cams, size=x.shape[2:], mode=_INTERPOLATION[cams.dim() - 2],
                             align_corners=False)
    return Explanation(
        values=cams,
        inputs=x,
        target=torch.cat(targets),
        outputs=torch.cat(outputs),
        params={"layer": key},
        kind="image" if x.dim() == 4 else None,
        meta={"forward_rows": len(x), "backward_rows": len(x), "layer_shape": list(layer_shape)},
    )


def _spatial_dims(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, t.dim()))


def grad_cam_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM channel weights ``α_k = mean_ij g_kij`` (global-average-pooled gradients)."""
    return grads.mean(dim=_spatial_dims(grads))


def grad_cam_pp_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ channel weights ``w_k = Σ_ij α_kij · ReLU(g_kij)``.

    ``α_kij = g_kij² / (2 g_kij² + (Σ_ab A_kab) · g_kij³)``, and 0 where the denominator is 0.
    The sum in the denominator runs over the activations only; ``g³`` stays at position ij
    (summing ``A · g³`` instead, as some implementations do, is a different formula). The
    paper's exponential output contributes a positive factor ``exp(y_t)`` per row, which is
    dropped: it scales every map of a row alike.
    """
    dims = _spatial_dims(grads)
    g2 = grads.pow(2)
    denom = 2 * g2 + acts.sum(dim=dims, keepdim=True) * grads.pow(3)
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                        torch.zeros_like(denom))
    return (alpha * grads.clamp_min(0)).sum(dim=dims)


@register("grad_cam", gradients=True, layer=True)
def grad_cam(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    layer: str | nn.Module,
    upsample: bool = True,
    relu: bool = True,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Grad-CAM: ``ReLU(Σ_k α_k A_k)`` with ``α_k`` the spatial mean of ``∂y_t/∂A_k``.

    ``layer`` is a module of the model or its dotted name (``"features.2"``). ``values`` are
    ``(n, 1, *spatial)``: upsampled (bi/trilinear) to the input's spatial size, or at the
    layer's own resolution with ``upsample=False``. ``relu=False`` keeps negative evidence.
    Cost: one forward and one backward per row. Reference: Selvaraju et al. 2017, "Grad-CAM".
    """
    return _cam("grad_cam", grad_cam_weights, model, inputs, layer=layer, target=target,
                upsample=upsample, relu=relu, batch_size=batch_size, progress=progress)


@register("grad_cam_pp", gradients=True, layer=True)
def grad_cam_pp(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    layer: str | nn.Module,
    upsample: bool = True,
    relu: bool = True,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Grad-CAM++: ``ReLU(Σ_k w_k A_k)`` with ``w_k = Σ_ij α_kij ReLU(∂y_t/∂A_kij)``.

    ``α = g² / (2g² + (Σ A)·g³)`` (see :func:`grad_cam_pp_weights`). Options as for
    :func:`grad_cam`. Cost: one forward and one backward per row. Reference: Chattopadhay et
    al. 2018, "Grad-CAM++: Improved Visual Explanations for Deep Convolutional Networks".
    """
    return _cam("grad_cam_pp", grad_cam_pp_weights, model, inputs, layer=layer, target=target,
                upsample=upsample, relu=relu, batch_size=batch_size, progress=progress)
