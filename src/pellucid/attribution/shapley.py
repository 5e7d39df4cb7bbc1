"""Shapley values of features or groups: exact, Kernel SHAP, and antithetic permutation sampling.

The game is the interventional one of SHAP: ``v(S) = E_b f_t(x_S, b_{N\\S})``, absent groups filled
from background rows ``b`` (weighted when a large background was summarised by k-means), so
``v(∅) = E_b f_t(b)`` is ``baseline_outputs`` and ``v(N) = f_t(x)`` is ``outputs``; every method
here satisfies efficiency ``Σ φ = v(N) − v(∅)`` exactly (``delta`` is rounding only). All
coalitions of all rows go through :func:`._coalitions.coalition_values` in batches.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .._common import check_positive_int, generator, new_seed
from ..adapters import wrap
from ..errors import InputError
from ..explanation import Explanation
from ..model import Model, gather, select_target
from ..registry import register
from ._coalitions import coalition_values, expected_output, resolve_background
from ._groups import resolve_groups, spread

__all__ = ["exact_shapley", "kernel_shap", "permutation_shapley"]


class _Game:
    """One call's setup: model, rows, target, background, groups, ``v(N)`` and ``v(∅)``."""

    def __init__(self, model: Any, inputs: Any, *, target: Any, background: Any, groups: Any,
                 batch_size: int | None, max_background: int | None, seed: int) -> None:
        self.m: Model = wrap(model, batch_size=batch_size)
        self.batch_size = batch_size
        self.x = self.m.prepare(inputs)
        self.row = tuple(self.x.shape[1:])
        self.fill, self.weights = resolve_background(background, self.x, max_rows=max_background,
                                                     seed=seed)
        self.gmap, self.g = resolve_groups(groups, self.x)
        out = self.m.outputs(self.x, batch_size=batch_size, progress=False)
        self.t = select_target(out, target)
        self.fx = gather(out, self.t).double()
        self.v0 = expected_output(self.m, self.fill, self.weights, self.row, self.t,
                                  batch_size=batch_size)
        self.evaluations = len(self.x) + len(self.fill)

    def values(self, z: torch.Tensor, progress: bool | None, desc: str) -> torch.Tensor:
        """``v`` of coalitions ``z`` ``(m, G)`` for every row: ``(n, m)`` float64."""
        self.evaluations += len(self.x) * len(z) * len(self.fill)
        return coalition_values(self.m, self.x, self.t, z, self.fill, self.weights, gmap=self.gmap,
                                batch_size=self.batch_size, progress=progress, desc=desc)

    def explanation(self, phi: torch.Tensor, meta: dict, per_row: dict | None = None) -> Explanation:
        """The result: ``phi`` ``(n, groups)`` spread over the groups' members; the group values
        and any ``per_row`` tensors (standard errors) kept per row, run figures in ``meta``."""
        dtype = self.x.dtype if self.x.is_floating_point() else torch.get_default_dtype()
        meta = {"groups": self.gmap, "n_groups": self.g, "background_rows": len(self.fill),
                "forward_rows": self.evaluations, **meta}
        rows = {"group_values": phi.to(dtype), **{k: v.to(dtype) for k, v in (per_row or {}).items()}}
        return Explanation(
            values=spread(phi, self.gmap, self.row).to(dtype), inputs=self.x, target=self.t,
            outputs=self.fx.to(dtype), baseline_outputs=self.v0.to(dtype), meta=meta, per_row=rows,
        )


def _bits(codes: torch.Tensor, g: int) -> torch.Tensor:
    """Coalitions numbered by ``codes`` as ``(len, g)`` bools (bit j = group j present)."""
    return (codes[:, None] >> torch.arange(g, device=codes.device)) & 1 == 1


@register("exact_shapley", background=True, additive=True)
def exact_shapley(
    model: Any, inputs: Any, *, target: Any = None, background: Any, groups: Any = None,
    max_features: int = 20, max_background: int | None = 100, batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Exact Shapley values: ``φ_i = Σ_{S ⊆ N∖i} |S|!(d−|S|−1)!/d! · (v(S∪i) − v(S))``.

    All ``2^d`` coalitions of the ``d`` features or groups are evaluated in batches; ``φ`` is the
    value vector times a fixed ``2^d × d`` weight matrix (built block by block). ``d`` above
    ``max_features`` (20) raises an error, since the cost doubles with every feature: raise the
    limit, group the features (``groups=``), or use :func:`kernel_shap`.

    Cost: ``n · (2^d − 2) · B`` model rows for ``B`` background rows (at most ``max_background``;
    larger backgrounds are summarised by k-means), plus ``n + B``. Reference: Shapley 1953;
    Lundberg & Lee 2017 (the interventional game).
    """
    limit = check_positive_int(max_features, "max_features")
    m = wrap(model, batch_size=batch_size)
    with m.explaining():
        game = _Game(m, inputs, target=target, background=background, groups=groups,
                     batch_size=batch_size, max_background=max_background, seed=0)
        d = game.g
        if d > limit:
            raise InputError(
                f"exact_shapley evaluates all 2^d coalitions, and d = {d} features/groups is above "
                f"max_features={limit} ({2 ** d:,} coalitions per row and background row). Raise "
                "max_features if you can afford it, group the features (groups=), or use "
                "kernel_shap / permutation_shapley"
            )
        dev = game.x.device
        inner = torch.arange(1, 2 ** d - 1, device=dev) if d > 1 else torch.zeros(0, dtype=torch.long, device=dev)
        v_inner = game.values(_bits(inner, d), progress, "exact_shapley")
        n = len(game.x)
        v = torch.cat([game.v0[:, None], v_inner, game.fx[:, None]], dim=1)  # all 2^d codes in order
        # φ_i = Σ_z v(z)·(c1+c0)[|z|]·z_i − Σ_z v(z)·c0[|z|], c1[s] = w(s−1), c0[s] = w(s).
        k = torch.arange(d + 1, dtype=torch.float64, device=dev)
        lw = torch.lgamma(k + 1) + torch.lgamma(d - k) - math.lgamma(d + 1)  # w(k), k < d
        wk = torch.where(k < d, torch.exp(lw.clamp(max=700)), torch.zeros_like(k))
        c0 = wk
        c1 = torch.cat([torch.zeros(1, dtype=torch.float64, device=dev), wk[:-1]])
        phi = torch.zeros(n, d, dtype=torch.float64, device=dev)
        block = 1 << 16
        for start in range(0, 2 ** d, block):
            codes = torch.arange(start, min(start + block, 2 ** d), device=dev)
            z = _bits(codes, d)
            size = z.sum(1)
            vb = v[:, start:start + len(codes)]
            phi += (vb * (c1 + c0)[size]) @ z.double()
            phi -= (vb * c0[size]).sum(1, keepdim=True)
    return game.explanation(phi, {"coalitions": 2 ** d})


# -- Kernel SHAP --------------------------------------------------------------------------------

class _KernelDesign:
    """Coalitions and weights of Kernel SHAP for ``g`` players and a budget of ``samples``.

    Size classes ``{k, g−k}`` are enumerated completely, smallest first, while the budget covers
    them at their share of the Shapley kernel's mass (shap's rule); the rest of the budget draws
    complementary pairs ``(z, 1−z)`` from the remaining classes with probability proportional to
    their kernel mass. A pair drawn twice is evaluated once and counted twice.
    """

    def __init__(self, g: int, samples: int, gen: torch.Generator, device: torch.device) -> None:
        self.g, self.gen, self.device = g, gen, device
        ks = torch.arange(1, g, dtype=torch.float64)
        mu = (g - 1) / (ks * (g - ks))
        mu = mu / mu.sum()  # kernel mass of each size 1..g-1
        enum, weights = [], []
        left, mass_left = samples, 1.0
        classes = list(range(1, g // 2 + 1))
        done = 0
        for k in classes:
            sizes = [k] if 2 * k == g else [k, g - k]
            count = sum(math.comb(g, s) for s in sizes)
            mass = float(sum(mu[s - 1] for s in sizes))
            if mass_left <= 0 or left * mass / mass_left < count - 1e-8:
                break
            for s in sizes:
                z = self._all_of_size(s)
                enum.append(z)
                weights.append(torch.full((len(z),), float(mu[s - 1]) / math.comb(g, s),
                                          dtype=torch.float64))
            left -= count
            mass_left -= mass
            done += 1
        self.z_enum = torch.cat(enum).to(device) if enum else torch.zeros(0, g, dtype=torch.bool, device=device)
        self.w_enum = torch.cat(weights).to(device) if weights else torch.zeros(0, dtype=torch.float64, device=device)
        self.rest = classes[done:]
        self.mass_left = max(mass_left, 0.0) if self.rest else 0.0
        p = torch.tensor([float(mu[k - 1]) + (float(mu[g - k - 1]) if 2 * k != g else 0.0)
                          for k in self.rest], dtype=torch.float64)
        self.class_p = p / p.sum() if len(p) else p
        self.pair_space = sum(math.comb(g, k) if 2 * k != g else math.comb(g, k) // 2 for k in self.rest)
        self.budget_left = max(left, 0)
        self.draws = torch.zeros(0, g, dtype=torch.bool, device=device)  # canonical pairs, in order

    def _all_of_size(self, s: int) -> torch.Tensor:
        import itertools

        idx = torch.tensor(list(itertools.combinations(range(self.g), s)), dtype=torch.long)
        z = torch.zeros(len(idx), self.g, dtype=torch.bool)
        z.scatter_(1, idx, True)
        return z

    def _draw(self, count: int) -> torch.Tensor:
        """``count`` canonical pairs: a size class by kernel mass, then a uniform subset."""
        cls = torch.multinomial(self.class_p, count, replacement=True, generator=self._cpu_gen())
        k = torch.tensor(self.rest, dtype=torch.long)[cls]
        ranks = torch.rand(count, self.g, generator=self._cpu_gen()).argsort(1).argsort(1)
        z = ranks < k[:, None]
        return torch.where(z[:, :1], ~z, z).to(self.device)  # canonical: group 0 absent

    def _cpu_gen(self) -> torch.Generator:
        return self.gen  # a private CPU generator: the same draws on every device

    def sample(self, pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw until ``pairs`` distinct pairs in all (or the space is exhausted): every distinct
        canonical pair so far ``(U, g)`` and its count among the draws ``(U,)``."""
        pairs = min(pairs, self.pair_space)
        for _ in range(100):
            uniq, inv = torch.unique(self.draws, dim=0, return_inverse=True) if len(self.draws) else (self.draws, None)
            if len(uniq) >= pairs:
                break
            need = pairs - len(uniq)
            self.draws = torch.cat([self.draws, self._draw(max(2 * need, 32))])
        if inv is None:
            return uniq, torch.zeros(0, dtype=torch.float64, device=self.device)
        order = torch.arange(len(self.draws), device=self.device)
        first = torch.full((len(uniq),), len(self.draws), dtype=torch.long, device=self.device)
        first.scatter_reduce_(0, inv, order, reduce="amin")
        if len(uniq) > pairs:  # stop at the draw that brought the pairs-th distinct pair
            cut = first.sort().values[pairs - 1]
            self.draws = self.draws[:cut + 1]
            uniq, inv = torch.unique(self.draws, dim=0, return_inverse=True)
            first = torch.full((len(uniq),), len(self.draws), dtype=torch.long, device=self.device)
            first.scatter_reduce_(0, inv, order[:len(self.draws)], reduce="amin")
        keep = first.argsort()  # order of first appearance, so earlier evaluations stay valid
        counts = torch.bincount(inv, minlength=len(uniq)).to(torch.float64)
        return uniq[keep], counts[keep]


def _kernel_solve(z_enum, w_enum, pairs, counts, mass_left, v_enum, v_pairs, v_comp, v0, delta):
    """Constrained weighted least squares of Kernel SHAP, batched over rows.

    Minimise ``Σ w_z (v(z) − v0 − z·φ)²`` subject to ``Σ φ = Δ``: eliminating the last player,
    ``φ_g = Δ − Σ_{j<g} φ_j``, leaves ordinary WLS on ``X = z_{<g} − z_g`` and
    ``y = v(z) − v0 − z_g Δ``, shared ``X'WX`` and one right-hand side per row.

    Standard errors (sandwich, clustered by draw): the sampled pairs are i.i.d. draws, so
    ``Var φ̂ ≈ A⁻¹ (D·Cov(s_d)) A⁻¹`` with ``A = X'WX`` and ``s_d`` the draw's score
    ``ω Σ_{z ∈ pair} x_z r_z`` (``ω`` its weight, ``r`` the residual); enumerated coalitions are
    not random and add nothing. Fully enumerated games thus report zero error.
    """
    g = z_enum.shape[1] if len(z_enum) else pairs.shape[1]
    n = v0.shape[0]
    d_draws = float(counts.sum()) if len(counts) else 0.0
    omega = mass_left / (2 * d_draws) if d_draws else 0.0
    z = torch.cat([z_enum, pairs, ~pairs]).double()
    w = torch.cat([w_enum, counts * omega, counts * omega])
    v = torch.cat([v_enum, v_pairs, v_comp], dim=1)
    if g == 1:
        return delta[:, None].clone(), torch.zeros(n, 1, dtype=torch.float64, device=v0.device)
    x = z[:, :-1] - z[:, -1:]
    y = v - v0[:, None] - z[:, -1][None, :] * delta[:, None]  # (n, m)
    a = x.T @ (w[:, None] * x)
    if int(torch.linalg.matrix_rank(a)) < g - 1:
        raise InputError(
            f"the {len(z)} coalitions sampled do not determine {g} Shapley values (the regression "
            f"is singular); increase samples= (at least about 2·d = {2 * g}) or group the features"
        )
    a_inv = torch.linalg.inv(a)
    rhs = (y * w[None, :]) @ x  # (n, g-1)
    beta = rhs @ a_inv.T
    phi = torch.cat([beta, (delta - beta.sum(1))[:, None]], dim=1)
    se = torch.zeros(n, g, dtype=torch.float64, device=v0.device)
    if d_draws > 1:
        r = y - beta @ x.T  # (n, m)
        e, u = len(z_enum), len(pairs)
        xp, xc = x[e:e + u], x[e + u:]
        s = omega * (r[:, e:e + u, None] * xp[None] + r[:, e + u:, None] * xc[None])  # (n, U, g-1)
        mean = (counts[None, :, None] * s).sum(1, keepdim=True) / d_draws
        c = s - mean
        meat = torch.einsum("u,nui,nuj->nij", counts, c, c) * d_draws / (d_draws - 1)
        cov = a_inv @ meat @ a_inv  # (n, g-1, g-1)
        var_last = cov.sum(dim=(1, 2))
        var = torch.cat([torch.diagonal(cov, dim1=1, dim2=2), var_last[:, None]], dim=1)
        se = var.clamp(min=0).sqrt()
    return phi, se


@register("kernel_shap", background=True, random=True, additive=True)
def kernel_shap(
    model: Any, inputs: Any, *, target: Any = None, background: Any, groups: Any = None,
    samples: int | str | None = None, tolerance: float | None = None, max_samples: int = 1 << 15,
    max_background: int | None = 100, seed: int | None = None, batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Kernel SHAP: ``φ = argmin Σ_z π(z)(v(z) − v(∅) − z·φ)²`` subject to ``Σφ = v(N) − v(∅)``,
    with the Shapley kernel ``π(z) = (d−1) / (C(d,|z|)·|z|·(d−|z|))``.

    ``samples`` coalitions per row (default ``2d + 2048``, as shap): size classes are enumerated
    completely while the budget allows and complementary pairs sampled beyond
    (:class:`_KernelDesign`); with ``samples ≥ 2^d − 2`` the result is exact. Efficiency is
    imposed exactly, every feature gets its value (no feature selection), and each value comes
    with a standard error in ``per_row["standard_errors"]`` (sandwich estimate over the sampled
    pairs, see :func:`_kernel_solve`). ``samples="auto"`` doubles the sampled pairs until the
    largest standard error is below ``tolerance`` (default 1% of the largest
    ``|f(x) − E f(background)|``) or ``max_samples`` is reached.

    Cost: ``n · samples · B`` model rows plus ``n + B``. Reference: Lundberg & Lee 2017, "A
    Unified Approach to Interpreting Model Predictions"; Covert & Lee 2021 (paired sampling).
    """
    seed = new_seed(seed)
    m = wrap(model, batch_size=batch_size)
    with m.explaining():
        game = _Game(m, inputs, target=target, background=background, groups=groups,
                     batch_size=batch_size, max_background=max_background, seed=seed)
        d = game.g
        full = 2 ** d - 2 if d < 63 else 1 << 62
        auto = samples == "auto"
        if samples is None or auto:
            budget = 2 * d + 2048
        else:
            budget = check_positive_int(samples, "samples")
            if budget < min(d + 1, full):
                raise InputError(
                    f"samples={budget} is too small for {d} features/groups: Kernel SHAP needs at "
                    f"least d + 1 = {d + 1} coalitions (about 2·d + 2048 is the usual budget); "
                    "increase samples or group the features"
                )
        budget = min(budget, full)
        max_samples = max(check_positive_int(max_samples, "max_samples"), budget)
        design = _KernelDesign(d, budget, generator(seed, torch.device("cpu")), game.x.device)
        v_enum = game.values(design.z_enum, progress, "kernel_shap")
        delta = game.fx - game.v0
        tol = tolerance if tolerance is not None else max(0.01 * float(delta.abs().max()), 1e-8)
        n_pairs = design.budget_left // 2
        pairs = torch.zeros(0, d, dtype=torch.bool, device=game.x.device)
        v_p = v_c = torch.zeros(len(game.x), 0, dtype=torch.float64, device=game.x.device)
        rounds = 0
        while True:
            new_pairs, counts = design.sample(n_pairs) if n_pairs > 0 else (pairs, torch.zeros(0, dtype=torch.float64))
            fresh = new_pairs[len(pairs):]
            if len(fresh):
                v_p = torch.cat([v_p, game.values(fresh, progress, "kernel_shap")], 1)
                v_c = torch.cat([v_c, game.values(~fresh, progress, "kernel_shap")], 1)
            pairs = new_pairs
            phi, se = _kernel_solve(design.z_enum, design.w_enum, pairs, counts.to(game.x.device),
                                    design.mass_left, v_enum, v_p, v_c, game.v0, delta)
            rounds += 1
            used = len(design.z_enum) + 2 * len(pairs)
            converged = float(se.max()) <= tol if se.numel() else True
            if (not auto or converged or 2 * len(pairs) >= 2 * design.pair_space
                    or used >= max_samples):
                break
            n_pairs = min(2 * max(len(pairs), 16), len(pairs) + (max_samples - used) // 2)
    return game.explanation(
        phi,
        {"samples_used": used, "enumerated": len(design.z_enum), "sampled_pairs": len(pairs),
         "exact": len(pairs) == 0 and used >= full, "converged": converged, "tolerance": tol,
         "rounds": rounds, "seed": seed},
        {"standard_errors": se},
    )


# -- permutations -------------------------------------------------------------------------------

@register("permutation_shapley", background=True, random=True, additive=True)
def permutation_shapley(
    model: Any, inputs: Any, *, target: Any = None, background: Any, groups: Any = None,
    permutations: int = 10, max_background: int | None = 100, seed: int | None = None,
    batch_size: int | None = None, progress: bool | None = None,
) -> Explanation:
    """Permutation sampling: ``φ_i = E_π [v(Pre_π(i) ∪ i) − v(Pre_π(i))]`` over random orders.

    ``permutations`` random orders, each also walked in reverse (antithetic sampling, as shap's
    ``PermutationExplainer``), all rows sharing the orders. Each order's contributions telescope to
    ``v(N) − v(∅)``, so efficiency holds exactly. ``per_row["standard_errors"]``: the standard
    deviation over antithetic pairs divided by the square root of their number.

    Cost: ``n · 2·permutations · (d − 1) · B`` model rows plus ``n + B``. Reference: Castro, Gómez
    & Tejada 2009; Mitchell et al. 2022 (antithetic permutations).
    """
    seed = new_seed(seed)
    p = check_positive_int(permutations, "permutations")
    m = wrap(model, batch_size=batch_size)
    with m.explaining():
        game = _Game(m, inputs, target=target, background=background, groups=groups,
                     batch_size=batch_size, max_background=max_background, seed=seed)
        d, n, dev = game.g, len(game.x), game.x.device
        gen = torch.Generator().manual_seed(seed)
        perm = torch.rand(p, d, generator=gen).argsort(1)
        perm = torch.cat([perm, perm.flip(1)]).to(dev)  # (2p, d): order, then its reverse
        rank = perm.argsort(1)  # position of each group in each order
        steps = torch.arange(1, d, device=dev)
        z = rank[:, None, :] < steps[None, :, None]  # (2p, d-1, d): first t groups present
        v_mid = game.values(z.reshape(-1, d), progress, "permutation_shapley").view(n, 2 * p, d - 1)
        v = torch.cat([game.v0[:, None, None].expand(n, 2 * p, 1), v_mid,
                       game.fx[:, None, None].expand(n, 2 * p, 1)], dim=2)
        contrib_by_pos = v[:, :, 1:] - v[:, :, :-1]  # (n, 2p, d): contribution of perm[:, t]
        contrib = torch.zeros_like(contrib_by_pos).scatter_(2, perm[None].expand(n, -1, -1),
                                                            contrib_by_pos)
        per_pair = (contrib[:, :p] + contrib[:, p:]) / 2  # (n, p, d)
        phi = per_pair.mean(1)
        se = per_pair.std(1) / math.sqrt(p) if p > 1 else torch.full_like(phi, float("nan"))
    return game.explanation(
        phi, {"seed": seed}, {"standard_errors": se},
    )
