"""Counterfactual explanations for tabular rows: the smallest change that flips the answer.

:func:`counterfactual` minimises, for every row and each of its ``k`` candidates ``x'``, the
objective of Wachter et al. (2017), "Counterfactual explanations without opening the black box"::

    hinge(f(x'), desired) + lambda * dist(x', x)  -  diversity * det(K)

- ``hinge`` is ``max(0, max_{j != t} z_j - z_t + margin)`` on the logits ``z`` (zero once the
  desired class ``t`` wins by ``margin``), so a reached candidate is pulled back toward ``x``
  by the distance term alone instead of being pushed ever deeper as cross-entropy would.
- ``dist`` is the L1 (``distance="l1"``, default) or L2 distance of ``(x' - x) / scale``, with a
  per-feature ``scale``: the standard deviation of each feature over the rows of ``x`` when
  ``n > 1`` (a constant feature gets scale 1), else 1; pass ``scale=`` to use e.g. the training
  set's MAD or std, as Wachter et al. recommend. Moving feature ``j`` by ``delta`` costs
  ``|delta| / scale_j``.
- ``lambda`` starts at 0.1 per candidate and is halved every ``steps // 20`` steps while that
  candidate has not reached ``desired`` (Wachter's schedule, here on the distance weight).
- For ``k > 1`` the candidates start at seeded random perturbations (a private generator; the
  global RNG is untouched) and DiCE's determinantal diversity term (Mothilal et al. 2020) is
  added: ``K_ij = 1 / (1 + dist(c_i, c_j))`` among a row's ``k`` candidates.

The L1 term is optimised as OWL-QN does: at a feature that is unchanged the pseudo-gradient is
zero unless the prediction's pull exceeds the penalty, and a step that crosses the original value
stops at it. So unchanged features stay *exactly* unchanged and the changes are sparse.

All rows x candidates are one batched tensor optimised by Adam; only the steps run in a Python
loop. Immutable features are never updated (gradient zeroed, value reset), and ``ranges`` are
enforced by projection after every step. For each candidate the reached point of smallest
distance seen is kept; the search stops early once every candidate has reached the desired class
and the total best distance no longer improves (relative change < 1e-3 over ``steps // 20``
steps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .._common import Stopwatch, generator, new_seed
from ..errors import InputError, ModelError, NotDifferentiableError
from ..model import select_target
from ..adapters import wrap
from ._growing_spheres import growing_spheres

__all__ = ["counterfactual", "Counterfactuals"]

_DISTANCES = ("l1", "l2")
_MARGIN = 0.1
_TOL = 1e-6


@dataclass(eq=False)
class Counterfactuals:
    """Counterfactuals for each row of ``x``.

    ``x`` the original rows ``(n, d)``; ``candidates`` ``(n, k, d)``; ``reached`` ``(n, k)``
    whether the model predicts ``desired`` at the candidate; ``distance`` ``(n, k)`` the scaled
    L1/L2 distance to the row; ``changed`` ``(n, k, d)`` the features with ``|x' - x| > tol``;
    ``desired`` ``(n,)``; ``predictions`` ``(n, k)`` the model's class at each candidate;
    ``meta`` the options used, the steps run and wall time.
    """

    x: torch.Tensor
    candidates: torch.Tensor
    reached: torch.Tensor
    distance: torch.Tensor
    changed: torch.Tensor
    desired: torch.Tensor
    predictions: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def reached_rate(self) -> float:
        """Fraction of rows with at least one candidate that reached the desired class."""
        return float(self.reached.any(dim=1).float().mean())

    def table(self, feature_names: Sequence[str] | None = None, row: int = 0,
              candidate: int = 0) -> list[dict[str, Any]]:
        """The changed features of one row's candidate: ``[{feature, original, counterfactual}]``."""
        n, k, d = self.candidates.shape
        if not (isinstance(row, int) and -n <= row < n):
            raise InputError(f"row {row!r} is out of range for {n} row(s)")
        if not (isinstance(candidate, int) and -k <= candidate < k):
            raise InputError(f"candidate {candidate!r} is out of range for k={k}")
        if feature_names is not None and len(feature_names) != d:
            raise InputError(f"feature_names has {len(feature_names)} names for {d} features")
        out = []
        for j in torch.nonzero(self.changed[row, candidate]).flatten().tolist():
            out.append({
                "feature": feature_names[j] if feature_names is not None else j,
                "original": float(self.x[row, j]),
                "counterfactual": float(self.candidates[row, candidate, j]),
            })
        return out

    def __repr__(self) -> str:
        n, k, _ = self.candidates.shape
        return f"Counterfactuals(n={n}, k={k}, reached_rate={self.reached_rate:.3f})"


# -- checks -------------------------------------------------------------------------------------
def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _nonneg(value: Any, name: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        raise InputError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _immutable(immutable: Any, d: int) -> list[int]:
    if immutable is None:
        return []
    if isinstance(immutable, (int, np.integer)) and not isinstance(immutable, bool):
        immutable = [immutable]
    out = []
    for f in immutable:
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not -d <= f < d:
            raise InputError(
                f"unknown immutable feature {f!r}: features are indices 0 to {d - 1}"
            )
        out.append(int(f) % d)
    return sorted(set(out))


def _ranges(ranges: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    if ranges is None:
        return None
    d = x.shape[1]
    lo = torch.full((d,), -math.inf, dtype=x.dtype, device=x.device)
    hi = torch.full((d,), math.inf, dtype=x.dtype, device=x.device)
    if isinstance(ranges, dict):
        for f, bounds in ranges.items():
            if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not -d <= f < d:
                raise InputError(f"unknown feature {f!r} in ranges: features are indices 0 to {d - 1}")
            try:
                a, b = bounds
                a = -math.inf if a is None else float(a)
                b = math.inf if b is None else float(b)
            except (TypeError, ValueError) as err:
                raise InputError(f"ranges[{f}] must be a pair (low, high), got {bounds!r}") from err
            lo[int(f) % d], hi[int(f) % d] = a, b
    else:
        r = torch.as_tensor(np.asarray(ranges.detach().cpu() if isinstance(ranges, torch.Tensor)
                                       else ranges, dtype=float))
        if r.shape != (d, 2):
            raise InputError(f"ranges must be a dict {{feature: (low, high)}} or shaped ({d}, 2); "
                             f"got shape {tuple(r.shape)}")
        r = r.to(device=x.device, dtype=x.dtype)
        lo, hi = r[:, 0].clone(), r[:, 1].clone()
    if bool(torch.isnan(lo).any() | torch.isnan(hi).any()) or bool((lo > hi).any()):
        raise InputError("ranges must have low <= high for every feature")
    outside = (x < lo) | (x > hi)
    if bool(outside.any()):
        i, j = torch.nonzero(outside)[0].tolist()
        raise InputError(
            f"ranges exclude the original value of feature {j} in row {i} ({float(x[i, j]):g} not "
            f"in [{float(lo[j]):g}, {float(hi[j]):g}]); widen the range to contain the inputs"
        )
    return lo, hi


def _categorical(categorical: Any, x: torch.Tensor, frozen: list[int],
                 bounds: tuple[torch.Tensor, torch.Tensor] | None) -> list[tuple[int, torch.Tensor]]:
    """``[(feature, sorted allowed values)]`` for the mutable categorical features."""
    if categorical is None:
        return []
    if not isinstance(categorical, dict):
        raise InputError(f"categorical must be a dict {{feature: allowed values}}, got {categorical!r}")
    d = x.shape[1]
    out = {}
    for f, values in categorical.items():
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not -d <= f < d:
            raise InputError(f"unknown feature {f!r} in categorical: features are indices 0 to {d - 1}")
        j = int(f) % d
        try:
            v = torch.as_tensor(np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor)
                                           else list(values), dtype=float).ravel())
        except (TypeError, ValueError) as err:
            raise InputError(f"categorical[{f}] must be a sequence of numbers, got {values!r}") from err
        if v.numel() == 0:
            raise InputError(f"categorical[{f}] is empty: give at least one allowed value")
        if not bool(torch.isfinite(v).all()):
            raise InputError(f"categorical[{f}] must hold finite values, got {values!r}")
        v = torch.unique(v.to(device=x.device, dtype=x.dtype))
        ok = (x[:, j, None] == v).any(1)
        if not bool(ok.all()):
            i = int(torch.nonzero(~ok)[0])
            raise InputError(
                f"categorical[{f}] does not allow the original value of feature {j} in row {i} "
                f"({float(x[i, j]):g}); allowed: {v.tolist()}"
            )
        if bounds is not None:  # only values inside ranges; the originals are, so none is empty
            v = v[(v >= bounds[0][j]) & (v <= bounds[1][j])]
        if j not in frozen:  # immutable wins
            out[j] = v
    return sorted(out.items())


def _snap(c: torch.Tensor, cats: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """``c`` (..., d) with each categorical feature moved to its nearest allowed value."""
    if not cats:
        return c
    c = c.clone()
    for j, v in cats:
        idx = (c[..., j, None] - v).abs().argmin(-1)
        c[..., j] = v[idx]
    return c


def _scale(scale: Any, x: torch.Tensor) -> torch.Tensor:
    d = x.shape[1]
    if scale is not None:
        s = torch.as_tensor(np.asarray(scale.detach().cpu() if isinstance(scale, torch.Tensor)
                                       else scale, dtype=float)).to(device=x.device, dtype=x.dtype)
        s = s.expand(d) if s.dim() == 0 else s
        if s.shape != (d,) or not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
            raise InputError(f"scale must be positive and finite, one per feature ({d}); got {scale!r}")
        return s
    if len(x) < 2:
        return torch.ones(d, dtype=x.dtype, device=x.device)
    s = x.std(dim=0)
    return torch.where(s > 1e-12, s, torch.ones_like(s))


def _dist(delta: torch.Tensor, scale: torch.Tensor, distance: str) -> torch.Tensor:
    z = delta / scale
    if distance == "l1":
        return z.abs().sum(-1)
    return (z.pow(2).sum(-1) + 1e-12).sqrt()


# -- the search ---------------------------------------------------------------------------------
def counterfactual(
    model: Any, x: Any, *, desired: Any, k: int = 1, distance: str = "l1",
    immutable: Sequence[int] = (), ranges: Any = None, steps: int = 500, lr: float = 0.05,
    diversity: float = 1.0, seed: int | None = None, batch_size: int | None = None,
    scale: Any = None, search: str = "auto", samples: int = 500, categorical: Any = None,
) -> Counterfactuals:
    """``k`` counterfactuals per row of ``x`` ``(n, d)`` that the model assigns to ``desired``.

    ``desired`` is a class index for all rows or one per row. ``immutable`` feature indices never
    change; ``ranges`` (``{feature: (low, high)}`` or a ``(d, 2)`` tensor) bound every candidate.
    ``scale`` (default: the std of each feature over ``x``, 1 for a single row) divides each
    feature's change in the distance. See the module docstring for the objective.

    ``search="gradient"`` runs that optimisation; ``search="sampling"`` runs the gradient-free
    Growing Spheres search (:mod:`._growing_spheres`), ``samples`` draws per row and layer and at
    most ``steps`` layers; ``"auto"`` (default) picks gradient for a differentiable model, else
    sampling.

    ``categorical`` (``{feature: allowed values}``, e.g. integer category codes or ``(0.0, 1.0)``
    for a flag) restricts those features to the listed values (every original value must be one
    of them). The gradient search optimises the relaxed value and snaps it to the nearest allowed
    value whenever a candidate is recorded and at the end, re-checking the prediction there; the
    sampling search draws them from the allowed values (keeping the original about half the time).
    ``reached`` always refers to the snapped candidate. An immutable feature stays immutable.

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = lin.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])); _ = lin.bias.zero_()
        >>> r = counterfactual(lin, torch.tensor([[1.0, 0.0]]), desired=1, seed=0)
        >>> bool(r.reached.all()), r.table()[0]["feature"]
        (True, 0)
    """
    watch = Stopwatch()
    if distance not in _DISTANCES:
        raise InputError(f"distance must be one of {_DISTANCES}, got {distance!r}")
    k = _positive_int(k, "k")
    steps = _positive_int(steps, "steps")
    lr = _nonneg(lr, "lr", positive=True)
    diversity = _nonneg(diversity, "diversity")
    if search not in ("auto", "gradient", "sampling"):
        raise InputError(f"search must be 'auto', 'gradient' or 'sampling', got {search!r}")
    samples = _positive_int(samples, "samples")
    seed = new_seed(seed)
    m = wrap(model, batch_size=batch_size)
    if search == "auto":
        search = "gradient" if m.differentiable else "sampling"
    if search == "gradient":
        m.require_gradients("counterfactual")
    x = m.prepare(x, name="x", as_float=True)
    if x.dim() != 2:
        raise InputError(f"counterfactual takes tabular rows shaped (n, d); got shape {tuple(x.shape)}")
    n, d = x.shape
    frozen = _immutable(immutable, d)
    bounds = _ranges(ranges, x)
    s = _scale(scale, x)
    cats = _categorical(categorical, x, frozen, bounds)

    with m.explaining():
        out0 = m.outputs(x[:1], batch_size=batch_size, progress=False)
        if out0.shape[1] < 2:
            raise ModelError(
                f"{m.name} has a single output; counterfactual needs class logits (n, classes >= 2). "
                "Wrap a one-logit binary model as torch.cat([-z, z], 1) / 2."
            )
        classes = out0.shape[1]
        target = select_target(torch.zeros(n, classes, device=x.device), desired)
        t = target.repeat_interleave(k)  # (n*k,)

        mask = torch.ones(d, dtype=x.dtype, device=x.device)
        mask[frozen] = 0
        if search == "sampling":
            best, best_dist, best_pred, run = growing_spheres(
                m, x, target, k=k, mask=mask, bounds=bounds, scale=s,
                dist=lambda dl: _dist(dl, s, distance), l1=distance == "l1", samples=samples,
                max_layers=steps, gen=generator(seed, x.device), batch_size=batch_size,
                categorical=cats,
            )
            return _result(x, best, best_pred, t, target, s, distance, {
                "method": "counterfactual", "search": "sampling", "k": k, "distance": distance,
                "immutable": frozen, "steps": steps, "steps_run": run, "samples": samples,
                "categorical": {j: v for j, v in cats}, "seed": seed, "scale": s, "ranges": bounds,
                "seconds": watch.seconds(),
            })
        x_rep = x.repeat_interleave(k, dim=0)  # (n*k, d)
        delta = torch.zeros_like(x_rep)
        if k > 1:
            gen = generator(seed, x.device)
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
        interval = max(1, steps // 20)
        last_total = math.inf
        run = 0
        for step in range(steps):
            run = step + 1
            with torch.enable_grad():
                grad = torch.zeros_like(x_rep)
                preds = torch.empty(n * k, dtype=torch.long, device=x.device)
                for sl, _ in m.chunks(n * k, (d,), batch_size=batch_size, progress=False, desc="counterfactual"):
                    dl = delta[sl]
                    z = m.forward(x_rep[sl] + dl)
                    zt = z.gather(1, t[sl, None]).squeeze(1)
                    other = z.masked_fill(torch.nn.functional.one_hot(t[sl], classes).bool(), -math.inf)
                    hinge = torch.relu(other.amax(dim=1) - zt + _MARGIN).sum()
                    try:
                        (g,) = torch.autograd.grad(hinge, dl, allow_unused=True)
                    except RuntimeError as err:
                        raise NotDifferentiableError(
                            f"could not differentiate {m.name}'s output with respect to its inputs ({err})"
                        ) from err
                    if g is not None:
                        grad[sl] = g
                    preds[sl] = z.detach().argmax(dim=1)
                cur = delta.detach()
                # keep the best reached point of each candidate (evaluated before this step)
                dist_now = _dist(cur, s, distance)
                point = x_rep + cur
                if cats:  # record the snapped point, re-checked by the model
                    point = _snap(point, cats)
                    dist_now = _dist(point - x_rep, s, distance)
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
                    pair = _dist(dv[:, :, None, :] - dv[:, None, :, :], s, distance)
                    kern = 1.0 / (1.0 + pair)
                    div = -diversity * torch.linalg.det(kern).sum()
                    (gd,) = torch.autograd.grad(div, delta)
                    grad = grad + gd
            lam_col = lam[:, None]
            if distance == "l1":
                pen = lam_col / s
                sign = cur.sign()
                at_zero = sign == 0
                g_nz = grad + pen * sign
                g_zero = torch.where(grad.abs() <= pen, torch.zeros_like(grad), grad - pen * grad.sign())
                pseudo = torch.where(at_zero, g_zero, g_nz)
            else:
                with torch.enable_grad():
                    dd = cur.clone().requires_grad_(True)
                    (gl2,) = torch.autograd.grad((lam * _dist(dd, s, distance)).sum(), dd)
                pseudo = grad + gl2
                sign = None
            opt.zero_grad(set_to_none=False)
            delta.grad = pseudo * mask
            opt.step()
            with torch.no_grad():
                new = delta
                if distance == "l1":
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
        final = _snap(x_rep + delta.detach(), cats)
        pf = m.outputs(final, batch_size=batch_size, progress=False).argmax(dim=1)
        df = _dist(final - x_rep, s, distance)
        better = (pf == t) & (df < best_dist)
        best[better] = final[better]
        best_dist = torch.where(better, df, best_dist)
        # unreached candidates report their last point
        unreached = best_dist == math.inf
        best[unreached] = final[unreached]
        best_pred = torch.where(unreached, pf, best_pred)

    return _result(x, best, best_pred, t, target, s, distance, {
        "method": "counterfactual", "search": "gradient", "k": k, "distance": distance, "immutable": frozen,
        "steps": steps, "steps_run": run, "lr": lr, "diversity": diversity, "seed": seed,
        "scale": s, "ranges": bounds, "margin": _MARGIN,
        "categorical": {j: v for j, v in cats}, "seconds": watch.seconds(),
    })


def _result(x, best, best_pred, t, target, s, distance, meta) -> Counterfactuals:
    n, d = x.shape
    k = len(t) // n
    cand = best.view(n, k, d)
    diff = cand - x[:, None, :]
    dist = _dist(diff, s, distance)
    changed = diff.abs() > _TOL
    return Counterfactuals(
        x=x, candidates=cand, reached=(best_pred == t).view(n, k), distance=dist, changed=changed,
        desired=target, predictions=best_pred.view(n, k), meta=meta,
    )
