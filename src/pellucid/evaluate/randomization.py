"""Randomisation sanity checks: does the explanation change when the model does?

An explanation that stays the same after the model's weights are scrambled (or after it was
trained on random labels) cannot be explaining the model. Both tests re-run one attribution
method and compare the maps with Spearman rank correlation and/or SSIM, batched in torch.

Reference: Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim 2018, "Sanity Checks for Saliency
Maps" (NeurIPS).
"""
from __future__ import annotations

import copy
import inspect
import types
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._common import Stopwatch, new_seed
from ..errors import InputError, ModelError
from ..explanation import Explanation
from ..model import Model
from ..adapters import wrap
from ..registry import get
from ._score import Score

__all__ = ["model_randomization", "data_randomization", "spearman", "ssim", "layer_order"]

_MEASURES = ("spearman", "ssim")


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (flattened).

    ``ρ = Pearson(rank(a), rank(b))`` with tied values given their average rank (as
    ``scipy.stats.spearmanr``); NaN for a constant row. Float64, one sort per row, no loops.
    """
    ra, rb = _ranks(a.reshape(len(a), -1)), _ranks(b.reshape(len(b), -1))
    ra, rb = ra - ra.mean(dim=1, keepdim=True), rb - rb.mean(dim=1, keepdim=True)
    return ((ra * rb).sum(dim=1) / (ra.norm(dim=1) * rb.norm(dim=1))).clamp(-1, 1)


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """1-based ranks along dim 1; tied values share the mean of their positions."""
    n, f = v.shape
    order = v.argsort(dim=1, stable=True)
    s = v.gather(1, order)
    pos = torch.arange(f, device=v.device).expand(n, f)
    starts = torch.ones_like(s, dtype=torch.bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, pos, 0).cummax(dim=1).values
    last = torch.where(ends, pos, f).flip(1).cummin(dim=1).values.flip(1)
    ranks = (first + last).double() / 2 + 1
    return torch.empty_like(ranks).scatter_(1, order, ranks)


def ssim(
    a: torch.Tensor, b: torch.Tensor, *, data_range: torch.Tensor | float | None = None,
    window: int = 11, sigma: float = 1.5,
) -> torch.Tensor:
    """Structural similarity of 2-D maps ``(n, H, W)``, one value per row.

    ``SSIM = mean_w [(2μ_aμ_b + C1)(2σ_ab + C2)] / [(μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)]``
    with Gaussian-weighted local statistics (``window`` taps, ``sigma`` 1.5; the window shrinks
    to the largest odd size that fits a smaller map), ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²`` and
    ``L = data_range`` (per row or one number; default: the range of ``a``, the reference). Only
    windows inside the map count (as ``skimage.metrics.structural_similarity`` with
    ``gaussian_weights=True, use_sample_covariance=False``). Reference: Wang, Bovik, Sheikh &
    Simoncelli 2004, "Image Quality Assessment: From Error Visibility to Structural Similarity".
    """
    if a.dim() != 3 or a.shape != b.shape:
        raise InputError(f"ssim needs two batches of 2-D maps (n, H, W) of one shape; got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.double(), b.double()
    n, h, w = a.shape
    size = min(window, h, w)
    size -= 1 - size % 2
    taps = torch.arange(size, dtype=torch.float64, device=a.device) - (size - 1) / 2
    g = torch.exp(-taps**2 / (2 * sigma**2))
    g = g / g.sum()
    if data_range is None:
        flat = a.reshape(n, -1)
        data_range = flat.max(dim=1).values - flat.min(dim=1).values
    rng = torch.as_tensor(data_range, dtype=torch.float64, device=a.device).expand(n)
    rng = torch.where(rng > 0, rng, torch.ones_like(rng))  # a constant map: any positive L
    stack = torch.stack([a, b, a * a, b * b, a * b], dim=1).reshape(n * 5, 1, h, w)
    local = F.conv2d(F.conv2d(stack, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
    mu_a, mu_b, aa, bb, ab = local.reshape(n, 5, *local.shape[2:]).unbind(dim=1)
    c1, c2 = ((0.01 * rng) ** 2).view(n, 1, 1), ((0.03 * rng) ** 2).view(n, 1, 1)
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2))


def _similarities(
    original: torch.Tensor, other: torch.Tensor, measures: Sequence[str], abs: bool
) -> dict[str, torch.Tensor]:
    """Each measure of ``other`` against ``original`` (attribution values), per row."""
    a, b = (original.abs(), other.abs()) if abs else (original, other)
    out = {}
    for measure in measures:
        if measure == "spearman":
            out[measure] = spearman(a, b)
        else:
            out[measure] = ssim(*(_normalised(_map2d(t)) for t in (a, b)))
    return out


def _map2d(values: torch.Tensor) -> torch.Tensor:
    """An image attribution as one 2-D map per row: channels summed."""
    if values.dim() == 4:
        return values.sum(dim=1)
    if values.dim() == 3:
        return values
    raise InputError(
        f"SSIM compares 2-D maps; attributions shaped {tuple(values.shape)} are not images "
        "(n, C, H, W) or (n, H, W). Use similarity='spearman'."
    )


def _normalised(m: torch.Tensor) -> torch.Tensor:
    """Each map divided by its largest absolute value (SSIM is not scale-invariant)."""
    peak = m.reshape(len(m), -1).abs().max(dim=1).values.view(-1, 1, 1)
    return m / torch.where(peak > 0, peak, torch.ones_like(peak))


def _measures(similarity: str | Sequence[str]) -> tuple[list[str], bool]:
    """The measures asked for, and whether one Score (not a dict) is returned."""
    single = isinstance(similarity, str) and similarity != "both"
    names = list(_MEASURES) if similarity == "both" else [similarity] if single else list(similarity)
    bad = [s for s in names if s not in _MEASURES]
    if bad or not names:
        raise ValueError(
            f"similarity must be 'spearman', 'ssim', 'both' or a list of them; got {similarity!r}")
    return names, single


def _method(method: str | Callable[..., Explanation]) -> tuple[Callable[..., Explanation], str, bool]:
    """The method's function, its name, and whether it takes ``seed=``."""
    if callable(method):
        fn, name = method, getattr(method, "__name__", "method")
    else:
        fn, name = get(method).function, method
    try:
        seeded = "seed" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        seeded = False
    return fn, name, seeded


def layer_order(module: nn.Module, x: torch.Tensor, *, call: Callable | None = None) -> list[str]:
    """Names of the submodules holding parameters of their own, in the order they finish in one
    forward pass of ``x`` through ``call`` (default: the module itself). A module that runs twice
    counts once; modules that never run are left out. Cost: one forward pass, under ``no_grad``.
    """
    names = {mod: name for name, mod in module.named_modules()}
    order: list[str] = []

    def record(mod: nn.Module, _inputs: Any, _output: Any) -> None:
        if names[mod] not in order:
            order.append(names[mod])

    owners = [mod for mod in names if any(True for _ in mod.parameters(recurse=False))]
    handles = [mod.register_forward_hook(record) for mod in owners]
    try:
        with torch.no_grad():
            (call or module)(x)
    finally:
        for h in handles:
            h.remove()
    return order


def _copy_model(m: Model) -> Model:
    """A :class:`Model` around a deep copy of ``m``'s module (same settings)."""
    if m.module is None:
        raise ModelError(f"model randomisation needs a torch module to copy; {m.name} has none")
    module = copy.deepcopy(m.module)
    if m.fn is m.module:
        fn: Callable = module
    elif isinstance(m.fn, types.MethodType) and m.fn.__self__ is m.module:
        fn = types.MethodType(m.fn.__func__, module)
    else:
        raise ModelError(
            f"cannot randomise a copy of {m.name}: it is called through {m.fn!r}, not the module "
            "itself. Pass the torch module (or a bound method of it)."
        )
    return Model(fn, module=module, device=m.device, dtype=m.dtype, batch_size=m.batch_size,
                 differentiable=m.differentiable, eval_mode=m.eval_mode, name=m.name)


def _retarget(params: dict[str, Any], original: nn.Module, module: nn.Module) -> dict[str, Any]:
    """Method options that name a submodule of ``original`` point to the same one in the copy."""
    names = {mod: name for name, mod in original.named_modules()}
    copies = dict(module.named_modules())
    return {k: copies[names[v]] if isinstance(v, nn.Module) and v in names else v
            for k, v in params.items()}


def _own_state(layer: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of a layer's own parameters and buffers (``reset`` also resets running stats)."""
    own = list(layer.named_parameters(recurse=False)) + list(layer.named_buffers(recurse=False))
    return {name: t.detach().clone() for name, t in own}


def _layer_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)


def _randomise(layer: nn.Module, init: str | Callable, seed: int) -> None:
    """Re-initialise ``layer``'s own parameters in place, from ``seed`` (global RNG untouched)."""
    devices = [p.device.index or 0 for p in layer.parameters() if p.device.type == "cuda"]
    with torch.no_grad(), torch.random.fork_rng(devices=sorted(set(devices))):
        torch.manual_seed(seed)
        if callable(init):
            init(layer, torch.Generator().manual_seed(seed))
        elif init == "reset":
            layer.reset_parameters()
        else:
            for p in layer.parameters(recurse=False):
                g = torch.Generator(device=p.device).manual_seed(seed)
                spread = p.std(unbiased=False) if p.numel() > 1 else p.abs().reshape(())
                p.copy_(torch.randn(p.shape, generator=g, device=p.device, dtype=p.dtype) * spread)
                seed += 1


def model_randomization(
    model: Any,
    inputs: Any,
    *,
    method: str | Callable[..., Explanation],
    target: Any = None,
    layers: str = "cascade",
    similarity: str | Sequence[str] = "spearman",
    abs: bool = True,
    init: str | Callable[[nn.Module, torch.Generator], None] = "normal",
    seed: int | None = None,
    **method_params: Any,
) -> Score | dict[str, Score]:
    """Model parameter randomisation test: similarity of explanations before/after scrambling.

    Layers are the modules holding parameters, from the output down (reverse order of their
    forward execution). ``layers="cascade"``: stage ``k`` randomises the top ``k`` layers;
    ``"independent"``: stage ``k`` randomises layer ``k`` alone. At each stage the same
    ``method`` (a registry name or a function) explains the same inputs for the same target
    (the original model's, fixed), on a deep copy: the user's model is never modified.
    ``curves[i, k] = sim(A(x_i), A_k(x_i))``; ``values`` is the last stage (cascade: the fully
    randomised model) or the mean over stages (independent). ``similarity``: ``"spearman"``
    (rank correlation of the flattened maps), ``"ssim"`` (of the channel-summed 2-D maps, each
    divided by its peak) or ``"both"``/a list, which returns a dict of Scores. ``abs`` compares
    ``|A|``. A row whose map is constant has no rank correlation (NaN; ``Score.mean`` skips
    it). ``init``: ``"normal"`` draws ``N(0, std(p)²)`` for every parameter tensor ``p``
    (the scale of the trained layer kept), ``"reset"`` calls the layer's ``reset_parameters``
    (PyTorch's default initialisation, as Quantus does), or a function ``(layer, generator)``.
    Each layer's draw is seeded from ``(seed, layer index)``; the global RNG is untouched. A
    method that takes ``seed=`` (``smoothgrad``, ``random``) gets the same seed at every stage,
    so its maps differ only where the model does (the ``random`` control then scores 1).
    Lower similarity means the explanation depends on the parameters: the method passes.

    Cost: one deep copy of the model, one forward pass to order the layers, and ``1 + layers``
    runs of ``method``. Reference: Adebayo et al. 2018, "Sanity Checks for Saliency Maps".

    >>> import torch
    >>> from pellucid.zoo import GapCNN
    >>> s = model_randomization(GapCNN(seed=0), torch.rand(4, 1, 8, 8), method="input", seed=0)
    >>> s.meta["layers"], [round(v, 6) for v in s.values.tolist()]
    (['fc', 'conv'], [1.0, 1.0, 1.0, 1.0])
    """
    clock = Stopwatch()
    measures, single = _measures(similarity)
    if layers not in ("cascade", "independent"):
        raise ValueError(f"layers must be 'cascade' or 'independent', got {layers!r}")
    if not (callable(init) or init in ("normal", "reset")):
        raise ValueError(f"init must be 'normal', 'reset' or a function, got {init!r}")
    used_seed = new_seed(seed)
    fn, name, seeded = _method(method)
    m = wrap(model)
    work = _copy_model(m)
    params = _retarget(method_params, m.module, work.module)
    if seeded:
        params["seed"] = used_seed
    x = work.prepare(inputs)
    original = fn(work, x, target=target, **params)
    with work.explaining():
        order = layer_order(work.module, x[:1], call=work.fn)[::-1]
    if not order:
        raise ModelError(f"{m.name} has no layer with parameters to randomise")
    modules = dict(work.module.named_modules())
    curves = {s: [] for s in measures}
    rows = {k: _total([original], k) for k in ("forward_rows", "backward_rows")}
    for k, layer_name in enumerate(order):
        layer = modules[layer_name]
        kept = _own_state(layer) if layers == "independent" else {}
        _randomise(layer, init, _layer_seed(used_seed, k))
        e = fn(work, x, target=original.target, **params)
        for key in rows:
            rows[key] += _total([e], key)
        for s, v in _similarities(original.values, e.values, measures, abs).items():
            curves[s].append(v)
        with torch.no_grad():
            for key, old in kept.items():
                getattr(layer, key).copy_(old)
    meta = {"method": name, "layers": order, "mode": layers, "abs": abs,
            "init": init if isinstance(init, str) else getattr(init, "__name__", "function"),
            "seed": used_seed, "forward_rows": rows["forward_rows"] + 1,
            "backward_rows": rows["backward_rows"], "seconds": clock.seconds()}
    scores = {}
    for s in measures:
        c = torch.stack(curves[s], dim=1)
        values = c[:, -1] if layers == "cascade" else torch.nanmean(c, dim=1)
        scores[s] = Score(f"model_randomization_{s}", values, higher_is_better=False, curves=c,
                          meta={**meta, "similarity": s})
    return scores[measures[0]] if single else scores


def data_randomization(
    model: Any,
    shuffled_model: Any,
    inputs: Any,
    *,
    method: str | Callable[..., Explanation],
    target: Any = None,
    similarity: str | Sequence[str] = "spearman",
    abs: bool = True,
    seed: int | None = None,
    **method_params: Any,
) -> Score | dict[str, Score]:
    """Data randomisation test: similarity of explanations of a model and of its twin trained on
    shuffled labels.

    ``values[i] = sim(A_model(x_i), A_shuffled(x_i))``, both explaining the same target (the
    original model's unless ``target`` is given). ``shuffled_model`` is the same architecture
    trained by the user on randomly permuted labels; options that name a layer must name it by
    its dotted name. ``similarity``, ``abs`` and ``seed`` (given to a method that takes one, the
    same for both runs) as in :func:`model_randomization`. Low similarity
    means the explanation depends on what the model learned: the method passes.

    Cost: two runs of ``method``. Reference: Adebayo et al. 2018, "Sanity Checks for Saliency
    Maps" (the data randomisation test).
    """
    clock = Stopwatch()
    measures, single = _measures(similarity)
    fn, name, seeded = _method(method)
    used_seed = new_seed(seed)
    params = {**method_params, "seed": used_seed} if seeded else method_params
    original = fn(model, inputs, target=target, **params)
    other = fn(shuffled_model, inputs, target=original.target, **params)
    meta = {"method": name, "abs": abs, "seed": used_seed,
            "forward_rows": _total([original, other], "forward_rows"),
            "backward_rows": _total([original, other], "backward_rows"),
            "seconds": clock.seconds()}
    scores = {s: Score(f"data_randomization_{s}", v, higher_is_better=False,
                       meta={**meta, "similarity": s})
              for s, v in _similarities(original.values, other.values, measures, abs).items()}
    return scores[measures[0]] if single else scores


def _total(runs: list[Explanation], key: str) -> int:
    return int(sum(e.meta.get(key, 0) for e in runs))
