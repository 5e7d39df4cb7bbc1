"""Gradient search for counterfactuals: Wachter et al. (2017) with DiCE's diversity term.

"Counterfactual explanations without opening the black box". For every row and each of its ``k``
candidates ``x'`` it minimises::

    hinge(f(x'), t) + lambda * dist(x', x)  -  diversity * det(K)

- ``hinge`` is ``max(0, max_{j != t} z_j - z_t + margin)`` on the logits ``z`` (zero once the
  target class ``t`` wins by ``margin``), so a reached candidate is pulled back toward ``x`` by
  the distance term alone instead of being pushed ever deeper as cross-entropy would.
- ``dist`` is the scaled L1 or L2 distance of :func:`._constraints.distance`.
- ``lambda`` starts at 0.1 per candidate and is halved every ``steps // 20`` steps while that
  candidate has not reached ``t`` (Wachter's schedule, here on the distance weight).
- For ``k > 1`` the candidates start at seeded random perturbations and DiCE's determinantal
  diversity term (Mothilal et al. 2020) is added: ``K_ij = 1 / (1 + dist(c_i, c_j))`` among a
  row's ``k`` candidates.

The L1 term is optimised as OWL-QN does: at a feature that is unchanged the pseudo-gradient is
zero unless the prediction's pull exceeds the penalty, and a step that crosses the original value
stops at it. So unchanged features stay *exactly* unchanged and the changes are sparse.

All rows x candidates are one batched tensor optimised by Adam; only the steps run in a Python
loop. Immutable features are never updated (gradient zeroed, value reset), and ``ranges`` are
enforced by projection after every step. For each candidate the reached point of smallest
distance seen is kept; the search stops early once every candidate has reached the target class
and the total best distance no longer improves (relative change < 1e-3 over ``steps // 20``
steps). Categorical features are optimised relaxed and snapped to their nearest allowed value
whenever a candidate is recorded and at the end, where the prediction is checked again.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ..errors import NotDifferentiableError
from ..model import Model
from ._constraints import distance, snap

__all__ = ["wachter", "MARGIN"]

#: How far the target logit must lead the others for the hinge to vanish.
MARGIN = 0.1


def _hinge_gradient(m: Model, x_rep: torch.Tensor, delta: torch.Tensor, t: torch.Tensor,
                    classes: int, batch_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """d hinge / d delta and the predicted class, for every candidate, chunk by chunk."""
    n, d = x_rep.shape
    grad = torch.zeros_like(x_rep)
    preds = torch.empty(n, dtype=torch.long, device=x_rep.device)
    for rows, _ in m.chunks(n, (d,), batch_size=batch_size, progress=False, desc="counterfactual"):
        dl = delta[rows]
        z = m.forward(x_rep[rows] + dl)
        zt = z.gather(1, t[rows, None]).squeeze(1)
        other = z.masked_fill(torch.nn.functional.one_hot(t[rows], classes).bool(), -math.inf)
        hinge = torch.relu(other.amax(dim=1) - zt + MARGIN).sum()
        try:
            (g,) = torch.autograd.grad(hinge, dl, allow_unused=True)
        except RuntimeError as err:
            raise NotDifferentiableError(
                f"could not differentiate {m.name}'s output with respect to its inputs ({err})"
            ) from err
        if g is not None:
            grad[rows] = g
        preds[rows] = z.detach().argmax(dim=1)
    return grad, preds


def wachter(
    m: Model, x: torch.Tensor, target: torch.Tensor, *, k: int, classes: int, mask: torch.Tensor,
    bounds: tuple[torch.Tensor, torch.Tensor] | None, scale: torch.Tensor, kind: str,
    categorical: list[tuple[int, torch.Tensor]], rounds: Iterable[int], lr: float,
    diversity: float, gen: torch.Generator, batch_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``(best (n*k, d), best_dist (n*k,), best_pred (n*k,), steps_run)``; ``rounds`` the steps
    (a range, or one behind a progress bar)."""
    n, d = x.shape
    s, cats = scale, categorical
    t = target.repeat_interleave(k)  # (n*k,)
    x_rep = x.repeat_interleave(k, dim=0)  # (n*k, d)
    delta = torch.zeros_like(x_rep)
    if k > 1:
        delta = 0.5 * s * torch.randn(x_rep.shape, generator=gen, device=x.device, dtype=x.dtype)
    delta = delta * mask

    def project(dl: torch.Tensor) -> torch.Tensor:
        dl = dl * mask
        if bounds is not None:
            dl = torch.minimum(torch.maximum(x_rep + dl, bounds[0]), bounds[1]) - x_rep
        return dl

    delta = project(delta).requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=lr)
    lam = torch.full((n * k,), 0.1, dtype=x.dtype, device=x.device)
    best = x_rep.clone()
    best_dist = torch.full((n * k,), math.inf, dtype=x.dtype, device=x.device)
    best_pred = torch.full((n * k,), -1, dtype=torch.long, device=x.device)
    interval = max(1, len(rounds) // 20)
    last_total = math.inf
    run = 0
    for step in rounds:
        run = step + 1
        with torch.enable_grad():
            grad, preds = _hinge_gradient(m, x_rep, delta, t, classes, batch_size)
            cur = delta.detach()
            # keep the best reached point of each candidate (evaluated before this step)
            dist_now = distance(cur, s, kind)
            point = x_rep + cur
            if cats:  # record the snapped point, re-checked by the model
                point = snap(point, cats)
                dist_now = distance(point - x_rep, s, kind)
                cand = torch.nonzero((preds == t) & (dist_now < best_dist)).flatten()
                if len(cand):
                    preds = preds.clone()
                    preds[cand] = m.outputs(point[cand], batch_size=batch_size,
                                            progress=False).argmax(dim=1)
            better = (preds == t) & (dist_now < best_dist)
            best[better] = point[better]
            best_dist = torch.where(better, dist_now, best_dist)
            best_pred = torch.where(better, preds, best_pred)
            if k > 1 and diversity > 0:
                dv = delta.view(n, k, d)
                pair = distance(dv[:, :, None, :] - dv[:, None, :, :], s, kind)
                kern = 1.0 / (1.0 + pair)
                div = -diversity * torch.linalg.det(kern).sum()
                (gd,) = torch.autograd.grad(div, delta)
                grad = grad + gd
        lam_col = lam[:, None]
        if kind == "l1":
            pen = lam_col / s
            sign = cur.sign()
            at_zero = sign == 0
            g_nz = grad + pen * sign
            g_zero = torch.where(grad.abs() <= pen, torch.zeros_like(grad), grad - pen * grad.sign())
            pseudo = torch.where(at_zero, g_zero, g_nz)
        else:
            with torch.enable_grad():
                dd = cur.clone().requires_grad_(True)
                (gl2,) = torch.autograd.grad((lam * distance(dd, s, kind)).sum(), dd)
            pseudo = grad + gl2
            sign = None
        opt.zero_grad(set_to_none=False)
        delta.grad = pseudo * mask
        opt.step()
        with torch.no_grad():
            new = delta
            if kind == "l1":
                # orthant step: a feature may not cross its original value in one step
                sg = torch.where(sign == 0, pseudo.sign().neg(), sign)
                new.copy_(torch.where((new * sg < 0) | (sg == 0), torch.zeros_like(new), new))
            new.copy_(project(new))
        if run % interval == 0:
            unreached = best_dist == math.inf
            lam = torch.where(unreached, lam * 0.5, lam)
            total = float(best_dist.sum())
            if not bool(unreached.any()):
                if math.isfinite(last_total) and last_total - total <= 1e-3 * max(last_total, 1e-12):
                    break
                last_total = total
    # final point
    final = snap(x_rep + delta.detach(), cats)
    pf = m.outputs(final, batch_size=batch_size, progress=False).argmax(dim=1)
    df = distance(final - x_rep, s, kind)
    better = (pf == t) & (df < best_dist)
    best[better] = final[better]
    best_dist = torch.where(better, df, best_dist)
    # unreached candidates report their last point
    unreached = best_dist == math.inf
    best[unreached] = final[unreached]
    best_pred = torch.where(unreached, pf, best_pred)
    return best, best_dist, best_pred, run
