"""Gradient-free counterfactual search for black-box models: Growing Spheres.

Laugel et al. (2017), "Inverse classification for comparison-based interpretability in machine
learning". For every row, candidates are drawn uniformly in spherical layers of growing radius
around it in the scaled feature space ``(x' - x) / scale`` (L1 spheres for ``distance="l1"``, L2
otherwise), with immutable features left exactly equal and ``ranges`` enforced by clipping. The
first radius is halved while its ball already holds points of the target class, then layers of
that width (each 5% wider than the last) grow outward until one does. Per row the ``k`` closest
distinct reached samples are kept and sparsified: changed features are reset to the original
value one at a time, smallest change first, as long as the target class holds.

All active rows x samples of a layer go through ``m.outputs`` in one batched call; only the layers
and the feature-selection steps loop in Python.
"""
from __future__ import annotations

import math

import torch

_ETA = 0.1        # first radius, in scaled units
_HALVINGS = 10    # at most this many halvings of the first radius
_GROW = 1.05      # each layer is this much wider than the last, so far classes are reached


def _sample(n_rows: int, samples: int, d: int, lo: torch.Tensor, hi: torch.Tensor,
            mask: torch.Tensor, l1: bool, gen: torch.Generator, dtype, device) -> torch.Tensor:
    """``(n_rows, samples, d)`` scaled offsets uniform in the layer ``lo <= |z| <= hi`` of each row."""
    shape = (n_rows, samples, d)
    if l1:  # uniform on the L1 sphere: signed exponentials normalised by their sum
        e = -torch.log(torch.rand(shape, generator=gen, dtype=dtype, device=device).clamp_min(1e-12))
        sign = torch.rand(shape, generator=gen, dtype=dtype, device=device) < 0.5
        u = torch.where(sign, -e, e) * mask
        u = u / u.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    else:
        u = torch.randn(shape, generator=gen, dtype=dtype, device=device) * mask
        u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    dim = max(int(mask.sum()), 1)
    a = (lo / hi.clamp_min(1e-30))[:, None] ** dim  # relative, so large radii do not overflow
    r = (a + torch.rand((n_rows, samples), generator=gen, dtype=dtype, device=device) * (1 - a))
    r = hi[:, None] * r.clamp_min(0) ** (1.0 / dim)
    return u * r[..., None]


def growing_spheres(m, x, target, *, k, mask, bounds, scale, dist, l1, samples, rounds, gen,
                    batch_size, categorical=()):
    """Returns ``(best (n*k, d), best_dist (n*k,), best_pred (n*k,), layers_run)``; ``rounds``
    bounds the growing layers (a range, or one behind a progress bar)."""
    n, d = x.shape
    dtype, device = x.dtype, x.device
    keep_mask = mask  # features that may change at all
    if categorical:  # categorical features are drawn from their values, not from the sphere
        mask = mask.clone()
        mask[[j for j, _ in categorical]] = 0

    def make(rows: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        c = x[rows, None, :] + z * scale
        if bounds is not None:
            c = torch.minimum(torch.maximum(c, bounds[0]), bounds[1])
        c = torch.where(keep_mask.bool(), c, x[rows, None, :])  # immutable: exactly the original
        for j, v in categorical:  # an allowed value, the original with probability 1/2
            shape = c.shape[:-1]
            pick = v[torch.randint(len(v), shape, generator=gen, device=device)]
            keep = torch.rand(shape, generator=gen, dtype=dtype, device=device) < 0.5
            c[..., j] = torch.where(keep, x[rows, None, j].expand(shape), pick)
        return c

    def predict(c: torch.Tensor) -> torch.Tensor:
        flat = c.reshape(-1, d)
        return m.outputs(flat, batch_size=batch_size, progress=False).argmax(1).view(c.shape[:-1])

    pool = x.repeat_interleave(k, 0).view(n, k, d).clone()
    pool_d = torch.full((n, k), math.inf, dtype=dtype, device=device)

    def merge(rows: torch.Tensor, c: torch.Tensor, hit: torch.Tensor) -> None:
        dd = dist(c - x[rows, None, :])
        dd = torch.where(hit, dd, torch.full_like(dd, math.inf))
        allc = torch.cat([pool[rows], c], 1)
        alld = torch.cat([pool_d[rows], dd], 1)
        top = alld.topk(k, dim=1, largest=False).indices
        pool[rows] = allc.gather(1, top[..., None].expand(-1, -1, d))
        pool_d[rows] = alld.gather(1, top)

    eta = torch.full((n,), _ETA, dtype=dtype, device=device)
    lo = torch.zeros(n, dtype=dtype, device=device)
    layers = 0
    # phase 1: halve the first radius while its ball already holds the target class
    active = torch.arange(n, device=device)
    for _ in range(_HALVINGS):
        if len(active) == 0:
            break
        layers += 1
        z = _sample(len(active), samples, d, torch.zeros_like(eta[active]), eta[active], mask, l1,
                    gen, dtype, device)
        c = make(active, z)
        hit = predict(c) == target[active, None]
        merge(active, c, hit)
        any_hit = hit.any(1)
        lo[active[~any_hit]] = eta[active[~any_hit]]
        eta[active[any_hit]] *= 0.5
        active = active[any_hit]
    # rows still hitting after every halving start their layers at the smallest radius tried
    lo[active] = eta[active]
    # phase 2: grow layers [lo, lo + eta] until a layer holds the target class (and k hits)
    active = torch.arange(n, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for _ in rounds:
        active = torch.nonzero(~done).flatten()
        if len(active) == 0:
            break
        layers += 1
        hi = lo[active] + eta[active]
        z = _sample(len(active), samples, d, lo[active], hi, mask, l1, gen, dtype, device)
        c = make(active, z)
        hit = predict(c) == target[active, None]
        merge(active, c, hit)
        done[active] = hit.any(1) & torch.isfinite(pool_d[active]).all(1)
        lo[active] = hi
        eta[active] *= _GROW

    # feature selection: reset changed features to the original, smallest change first
    best = pool.view(n * k, d).clone()
    xr = x.repeat_interleave(k, 0)
    t = target.repeat_interleave(k)
    reached = torch.isfinite(pool_d.view(-1))
    order = ((best - xr).abs() / scale).argsort(dim=1)
    rows = torch.arange(n * k, device=device)
    for j in range(d):
        f = order[:, j]
        live = reached & ((best[rows, f] - xr[rows, f]).abs() > 0)
        if not bool(live.any()):
            continue
        idx = rows[live]
        trial = best[idx].clone()
        trial[torch.arange(len(idx), device=device), f[idx]] = xr[idx, f[idx]]
        ok = m.outputs(trial, batch_size=batch_size, progress=False).argmax(1) == t[idx]
        best[idx[ok]] = trial[ok]
    # keep candidates distinct: one that collapsed onto an earlier one reverts to its raw sample
    if k > 1:
        bv, raw = best.view(n, k, d), pool
        for i in range(1, k):
            same = (bv[:, i, None, :] == bv[:, :i, :]).all(-1).any(1)
            bv[same, i] = raw[same, i]
    pred = m.outputs(best, batch_size=batch_size, progress=False).argmax(1)
    return best, dist(best - xr), pred, layers
