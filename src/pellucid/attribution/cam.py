"""Class activation maps from gradients: Grad-CAM and Grad-CAM++.

Both read the activations ``A`` of a chosen layer (``(n, C, *spatial)``) and the gradient
``g = ∂y_t/∂A`` of the explained output, weight the channels and keep the positive part.
Cost: one forward and one backward pass per row (the backward stops at the layer).

Vision transformers: a block's output is token-shaped, ``(n, tokens, dim)``. On image inputs
(or with ``grid=``) the leading class/distillation/register tokens are dropped, the patch tokens
are laid out on their grid as ``(n, dim, h, w)`` (channels = hidden units) and weighted as a
CNN's channels; the grid is ``h x w`` with the image's aspect ratio and the most patches that
fit in the token count (for a square image: the largest square), unless ``grid=`` says it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._common import check_positive_int
from .._hooks import capture, layer_key
from ..adapters import gradient_model
from ..errors import InputError, LayerError
from ..explanation import Explanation
from ..model import Model, gather, select_target
from ..registry import register

_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def layer_activation_gradients(
    m: Model, x: torch.Tensor, layer: str | nn.Module, target: Any, rows: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For one chunk: ``(A, ∂y_t/∂A, y_t, t)`` at ``layer``'s output, in one forward/backward."""
    with capture(m, [layer]) as (run, seen), torch.enable_grad():
        (name,) = seen
        out = m.forward(x.detach().requires_grad_(True), rows)
        t = select_target(out, target)
        y = gather(out, t)
        run.check_once(name)
        (grad,) = torch.autograd.grad(y.sum(), seen[name][0])
    return seen[name][0].detach(), grad.detach(), y.detach(), t


def _check_grid(grid: Any) -> tuple[int, int] | None:
    if grid is None:
        return None
    if not isinstance(grid, (tuple, list)) or len(grid) != 2:
        raise InputError(f"grid must be (rows, cols) of the patch grid, got {grid!r}")
    return check_positive_int(grid[0], "grid's rows"), check_positive_int(grid[1], "grid's cols")


def token_grid(
    tokens: int, image: tuple[int, ...] | None, grid: tuple[int, int] | None, *, what: str
) -> tuple[int, int, int]:
    """``(extra, h, w)``: the leading ``extra`` tokens to drop and the ``h x w`` patch grid of a
    layer with ``tokens`` tokens, on inputs whose spatial shape is ``image`` (``(H, W)``).

    With ``grid`` given, ``extra = tokens - h·w``. Otherwise the grid has the image's aspect
    ratio (``h·W = w·H``; a square for a square image) and the most patches that fit, and fewer
    leading tokens than its longer side (class, distillation and register tokens are a few;
    more than a row of them means the tokens are no patch grid). A
    :class:`~pellucid.errors.LayerError` names ``grid=`` where no such grid exists.
    """
    if grid is not None:
        h, w = grid
        if h * w > tokens:
            raise LayerError(
                f"grid={tuple(grid)} holds {h * w} patches, but {what} gives {tokens} tokens; "
                "give the layer's patch grid (rows, cols)")
        return tokens - h * w, h, w
    if image is not None and len(image) == 2:
        rows, cols = image
        div = math.gcd(rows, cols)
        a, b = rows // div, cols // div  # the smallest grid with the image's aspect ratio
        k = math.isqrt(tokens // (a * b))
        h, w = k * a, k * b
        if k >= 1 and h * w >= 2 and tokens - h * w < max(h, w):
            return tokens - h * w, h, w
    seen = f"for inputs shaped {tuple(image)}" if image is not None else "on these inputs"
    raise LayerError(
        f"{what} gives {tokens} tokens, which do not form a patch grid {seen} (a grid with the "
        "image's aspect ratio and fewer leading class/register tokens than its side); give "
        "grid=(rows, cols), the layer's patch grid: the leading tokens beyond rows*cols are "
        "dropped as class/register tokens")


def _tokens_to_grid(
    t: torch.Tensor, extra: int, h: int, w: int
) -> torch.Tensor:
    """``(n, tokens, dim) -> (n, dim, h, w)`` without the leading ``extra`` tokens."""
    return t[:, extra:].transpose(1, 2).reshape(len(t), t.shape[2], h, w)


def _cam(
    name: str,
    channel_weights: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    model: Any,
    inputs: Any,
    *,
    layer: str | nn.Module,
    target: Any,
    grid: tuple[int, int] | None,
    upsample: bool,
    relu: bool,
    batch_size: int | None,
    progress: bool | None,
) -> Explanation:
    m = gradient_model(model, name, batch_size)
    key = layer_key(m, layer)
    grid = _check_grid(grid)
    extra = None
    with m.explaining():
        x = m.prepare(inputs, as_float=True)
        maps, outputs, targets = [], [], []
        for rows, t in m.chunks(len(x), x.shape[1:], target=target, batch_size=batch_size,
                                progress=progress, desc=name):
            acts, grads, y, tt = layer_activation_gradients(m, x[rows], key, t, rows)
            # A 3-D output on image inputs is a transformer's tokens, not a Conv1d's (n, C, L).
            if acts.dim() == 3 and (grid is not None or x.dim() == 4):
                extra, h, w = token_grid(acts.shape[1], tuple(x.shape[2:]) if x.dim() == 4 else None,
                                         grid, what=f"layer {key!r}")
                acts, grads = (_tokens_to_grid(a, extra, h, w) for a in (acts, grads))
            elif grid is not None:
                raise LayerError(
                    f"grid= lays out the tokens of a transformer layer (n, tokens, dim); {key!r} "
                    f"gives shape {tuple(acts.shape)}: drop grid=")
            if acts.dim() < 3:
                raise LayerError(
                    f"{name} needs a layer whose output has channels and spatial dimensions "
                    f"(n, C, H, W) or (n, C, L); {key!r} gives shape "
                    f"{tuple(acts.shape)}. Pick a convolutional layer, or a transformer block "
                    "(n, tokens, dim)."
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
        meta={"forward_rows": len(x), "backward_rows": len(x), "layer_shape": list(layer_shape),
              **({} if extra is None else {"extra_tokens": extra})},
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
    grid: tuple[int, int] | None = None,
    upsample: bool = True,
    relu: bool = True,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Grad-CAM: ``ReLU(Σ_k α_k A_k)`` with ``α_k`` the spatial mean of ``∂y_t/∂A_k``.

    ``layer`` is a module of the model or its dotted name (``"features.2"``). ``values`` are
    ``(n, 1, *spatial)``: upsampled (bi/trilinear) to the input's spatial size, or at the
    layer's own resolution with ``upsample=False``. ``relu=False`` keeps negative evidence.

    A transformer block's output ``(n, tokens, dim)`` on image inputs is read as a patch grid:
    the leading class/register tokens are dropped and the patch tokens reshaped to
    ``(n, dim, h, w)``, so the hidden units are the channels (see :func:`token_grid`; ``grid=(h,
    w)`` gives the grid, and then any layer's leading tokens beyond ``h·w`` are dropped).
    ``meta["extra_tokens"]`` says how many were dropped, ``meta["layer_shape"]`` is the grid.
    Pick the *input* of the last block (the output of the block before it, or the last block's
    first LayerNorm): after the last block only the class token reaches the head, so the patch
    tokens' gradients there are zero and so is the map.

    Cost: one forward and one backward per row. Reference: Selvaraju et al. 2017, "Grad-CAM".
    """
    return _cam("grad_cam", grad_cam_weights, model, inputs, layer=layer, target=target, grid=grid,
                upsample=upsample, relu=relu, batch_size=batch_size, progress=progress)


@register("grad_cam_pp", gradients=True, layer=True)
def grad_cam_pp(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    layer: str | nn.Module,
    grid: tuple[int, int] | None = None,
    upsample: bool = True,
    relu: bool = True,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Grad-CAM++: ``ReLU(Σ_k w_k A_k)`` with ``w_k = Σ_ij α_kij ReLU(∂y_t/∂A_kij)``.

    ``α = g² / (2g² + (Σ A)·g³)`` (see :func:`grad_cam_pp_weights`). Options as for
    :func:`grad_cam`, transformer tokens included. The formula assumes non-negative
    activations (ReLU features): on a transformer's signed token features ``Σ A`` can be near
    zero or negative and the weights erratic (on ``pellucid.zoo.planted_vit`` the planted patch
    is its argmax in 26% of the images, against 100% for Grad-CAM).
    Cost: one forward and one backward per row. Reference: Chattopadhay et
    al. 2018, "Grad-CAM++: Improved Visual Explanations for Deep Convolutional Networks".
    """
    return _cam("grad_cam_pp", grad_cam_pp_weights, model, inputs, layer=layer, target=target, grid=grid,
                upsample=upsample, relu=relu, batch_size=batch_size, progress=progress)
