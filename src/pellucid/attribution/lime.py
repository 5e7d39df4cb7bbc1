"""LIME (Ribeiro, Singh & Guestrin 2016): a weighted linear surrogate fitted around each row."""
from __future__ import annotations

import math
from typing import Any

import torch

from .._common import check_positive, check_positive_int, generator, new_seed
from ..adapters import wrap
from ..errors import BaselineError
from ..explanation import Explanation
from ..model import Model, gather, select_target
from ..registry import register
from ._coalitions import coalition_values, resolve_background
from ._groups import resolve_groups, spread

__all__ = ["lime"]


def _ridge(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, alpha: float):
    """Weighted ridge with an unpenalised intercept, batched over rows (scikit-learn's ``Ridge``
    with ``sample_weight``): ``x (n, S, p)``, ``y, w (n, S)`` -> coef ``(n, p)``, intercept,
    weighted R²."""
    ws = (w / w.sum(1, keepdim=True))[:, None, :]  # (n, 1, S)
    xm = ws @ x  # (n, 1, p): weighted means as one batched product, no (n, S, p) temporaries
    ym = (ws @ y[..., None])[..., 0]  # (n, 1)
    xc, yc = x - xm, y - ym
    xw = xc * w[..., None]
    a = xc.transpose(1, 2) @ xw
    a = a + alpha * torch.eye(x.shape[2], dtype=x.dtype, device=x.device)
    coef = torch.linalg.solve(a, xw.transpose(1, 2) @ yc[..., None])[..., 0]
    intercept = ym[:, 0] - (xm[:, 0] * coef).sum(1)
    pred = intercept[:, None] + (x @ coef[..., None])[..., 0]
    ss_res = (w * (y - pred) ** 2).sum(1)
    ss_tot = (w * yc ** 2).sum(1)
    r2 = 1 - ss_res / ss_tot.clamp(min=torch.finfo(y.dtype).tiny)
    return coef, intercept, r2, pred[:, 0]


def _kernel(d: torch.Tensor, width: float) -> torch.Tensor:
    return torch.sqrt(torch.exp(-(d ** 2) / width ** 2))  # LIME's default kernel


def _explained(m: Model, points: torch.Tensor, t: torch.Tensor, batch_size, progress) -> torch.Tensor:
    """``f_t`` at ``points (n, S, d)`` (row i's samples explained at its own target)."""
    n, s = points.shape[:2]
    out = torch.empty(n * s, dtype=torch.float64, device=points.device)
    flat = points.reshape(n * s, *points.shape[2:])
    rows = torch.arange(n, device=points.device).repeat_interleave(s)
    for sl, _ in m.chunks(n * s, points.shape[2:], batch_size=batch_size, progress=progress, desc="lime",
                       forward_only=True):
        o = m.forward(flat[sl], rows[sl])
        out[sl] = o.gather(1, t[rows[sl]][:, None]).squeeze(1).double()
    return out.view(n, s)


@register("lime", random=True)
def lime(
    model: Any, inputs: Any, *, target: Any = None, background: Any = None, groups: Any = None,
    samples: int = 1000, kernel_width: float | None = None, discretize: bool = False,
    alpha: float = 1.0, seed: int | None = None, batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """LIME: ``argmin_g Σ_z π_x(z)(f_t(z) − g(z'))² + α‖g‖²`` for a linear ``g`` on an
    interpretable representation ``z'``, with ``π_x(z) = sqrt(exp(−D(x, z)² / width²))``.

    Two sampling schemes, as the ``lime`` package has them:

    * **tabular** (rows ``(n, d)`` of floats and no ``groups``): ``samples`` draws from a normal
      with the background's per-feature mean and standard deviation (``background=`` is required;
      the first sample is the row itself); ``z'`` the standardised sample, ``D`` the Euclidean
      distance in standardised units, ``width = 0.75·√d``. With ``discretize=True`` each feature
      is cut at the background's quartiles, samples draw each feature from its background values,
      and ``z'`` is 1 where a feature falls in the row's quartile bin (LIME's
      ``discretize_continuous``, with empirical instead of truncated-normal within-bin draws).
    * **binary masks** (images, text, or any ``groups=``): ``z'`` switches each group on or off
      at random (the first sample all on); absent groups take the background (default 0; several
      background rows are averaged into one), ``D`` is the cosine distance of ``z'`` to all-on,
      ``width = 0.25``.

    The surrogate is a weighted ridge regression (``alpha``, intercept unpenalised) fitted for all
    rows at once. ``values`` are its coefficients (spread equally over a group's members);
    ``per_row`` holds each row's ``intercept``, ``coefficients``, weighted ``r2`` (LIME's
    ``score``) and the surrogate's ``local_prediction`` at the row.

    Cost: ``n · samples`` model rows plus ``n``. Reference: Ribeiro et al. 2016, "Why Should
    I Trust You?".
    """
    seed = new_seed(seed)
    s = check_positive_int(samples, "samples", minimum=2)
    check_positive(alpha, "alpha", allow_zero=True)
    m = wrap(model, batch_size=batch_size)
    with m.explaining():
        x = m.prepare(inputs)
        n, row = len(x), tuple(x.shape[1:])
        gen = generator(seed, x.device)
        out = m.outputs(x, batch_size=batch_size, progress=False)
        t = select_target(out, target)
        fx = gather(out, t).double()
        tabular = x.dim() == 2 and x.is_floating_point() and groups is None
        meta: dict[str, Any] = {}
        if tabular:
            if background is None:
                raise BaselineError("lime on tabular rows needs background= (rows whose per-feature "
                                    "mean and standard deviation shape the samples), or groups= for "
                                    "binary masks")
            bg, _ = resolve_background(background, x)
            d = row[0]
            mean = bg.mean(0)
            std = bg.std(0, unbiased=False)
            std = torch.where(std > 0, std, torch.ones_like(std))
            if discretize:
                q = torch.quantile(bg.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64,
                                                             device=x.device), dim=0).to(x.dtype)
                pick = torch.randint(0, len(bg), (n, s, d), generator=gen, device=x.device)
                pts = bg[pick, torch.arange(d, device=x.device)]  # each feature from its column
                pts[:, 0] = x
                bins = lambda v: (v[..., None] > q.T).sum(-1)  # noqa: E731 - bin per feature
                z = (bins(pts) == bins(x)[:, None]).to(torch.float64)
                dist = (1.0 - z).sum(2).sqrt()
            else:
                noise = torch.randn(n, s, d, generator=gen, device=x.device, dtype=x.dtype)
                pts = noise * std + mean
                pts[:, 0] = x
                z = ((pts - mean) / std).double()
                dist = (z - z[:, :1]).norm(dim=2)
            width = kernel_width if kernel_width is not None else 0.75 * math.sqrt(d)
            y = _explained(m, pts, t, batch_size, progress)
            gmap, g = None, d
        else:
            gmap, g = resolve_groups(groups, x)
            fill, w_bg = resolve_background(0 if background is None else background, x)
            if len(fill) > 1:
                fill = ((w_bg.to(fill.dtype)[:, None] * fill).sum(0, keepdim=True) if fill.is_floating_point()
                        else fill[:1])
            z_bool = torch.rand(n, s, g, generator=gen, device=x.device) < 0.5
            z_bool[:, 0] = True
            ones = torch.ones(1, dtype=torch.float64, device=x.device)
            y = coalition_values(m, x, t, z_bool, fill, ones, gmap=gmap, batch_size=batch_size,
                                 progress=progress, desc="lime")
            z = z_bool.double()
            on = z.sum(2)
            dist = torch.where(on > 0, 1.0 - torch.sqrt(on / g), torch.ones_like(on))
            width = kernel_width if kernel_width is not None else 0.25
        check_positive(width, "kernel_width")
        weights = _kernel(dist, width)
        coef, intercept, r2, local = _ridge(z, y, weights, alpha)
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    if gmap is not None or not tabular:
        meta.update({"groups": gmap, "n_groups": g})
    meta.update({"kernel_width": width, "scheme": "tabular" if tabular else "binary",
                 "forward_rows": n * s + n, "seed": seed})
    return Explanation(
        values=spread(coef, gmap, row).to(dtype), inputs=x, target=t, outputs=fx.to(dtype),
        meta=meta,
        per_row={"intercept": intercept.to(dtype), "coefficients": coef.to(dtype),
                 "r2": r2.to(dtype), "local_prediction": local.to(dtype)},
    )
