"""Randomisation sanity checks: does the explanation change when the model does?

An explanation that stays the same after the model's weights are scrambled (or after it was
trained on random labels) cannot be explaining the model. Both tests re-run one attribution
method and compare the maps with Spearman rank correlation or SSIM (:mod:`.similarity`).

Either test takes the rows and a method (``method="saliency"``, a registered name or a function,
with its options), or an :class:`~pellucid.Explanation`, whose method is re-run with the options
and the target it was made with; registered as metrics they are called the second way.

Reference: Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim 2018, "Sanity Checks for Saliency
Maps" (NeurIPS).
"""
from __future__ import annotations

import copy
import inspect
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .._common import check_choice, new_seed, progress_bar
from .._deprecation import renamed, warn
from .._hooks import Site, hooks
from ..adapters import wrap
from ..errors import InputError, ModelError
from ..explanation import Explanation
from ..model import Model
from ..registry import get
from ._metric import metric
from ._perturb import accepts, rerun
from ._score import Score
from .similarity import MEASURES, similarities, spearman, ssim

# spearman and ssim moved to .similarity; still importable from here for one release.
__all__ = ["model_randomization", "data_randomization", "layer_order", "spearman", "ssim"]

MODES = ("cascade", "independent")
INITS = ("normal", "reset")


def _measures(similarity: str | Sequence[str], stacklevel: int) -> tuple[list[str], bool]:
    """The measures asked for, and whether the deprecated dict of Scores is asked for."""
    if isinstance(similarity, str) and similarity != "both":
        return [check_choice(similarity, "similarity", MEASURES)], False
    names = list(MEASURES) if similarity == "both" else (
        list(similarity) if isinstance(similarity, (list, tuple)) else [])
    if not names or any(s not in MEASURES for s in names):
        raise InputError(f"similarity must be one of {', '.join(map(repr, MEASURES))}; "
                         f"got {similarity!r}")
    warn("several similarities at once (similarity='both' or a list), returning a dict of Scores, "
         "is deprecated and will be removed in the next release; call once per similarity (the "
         "same seed randomises the same layers the same way)", stacklevel=stacklevel)
    return names, True


def _to_run(
    inputs: Any, method: Any, target: Any, method_params: dict[str, Any], test: str
) -> tuple[Callable[..., Explanation], str, dict[str, Any], Any, Any]:
    """``(function, name, options, inputs, target)``: from an Explanation, or from ``method``."""
    if isinstance(inputs, Explanation):
        if method is not None or target is not None or method_params:
            raise InputError(
                f"{test} re-runs an Explanation's own method with its own options and target; "
                "give either the Explanation alone or the rows with method= and its options"
            )
        fn, params = rerun(inputs, test)
        return fn, inputs.method, params, inputs.inputs, inputs.target
    if method is None:
        raise InputError(f"{test} needs method= (a registered name or a function), or an "
                         "Explanation instead of the rows")
    if callable(method):
        return method, getattr(method, "__name__", "method"), dict(method_params), inputs, target
    return get(method).function, method, dict(method_params), inputs, target


def _call_options(fn: Callable[..., Any], params: dict[str, Any], seed: int,
                  progress: bool | None) -> dict[str, Any]:
    """``params`` plus the seed (the same at every run) and the progress flag, where taken."""
    params = dict(params)
    if accepts(fn, "seed"):
        params["seed"] = seed
    if accepts(fn, "progress"):
        params["progress"] = progress
    return params


def layer_order(module: nn.Module, x: torch.Tensor, *, call: Callable | None = None) -> list[str]:
    """Names of the submodules holding parameters of their own, in the order they finish in one
    forward pass of ``x`` through ``call`` (default: the module itself). A module that runs twice
    counts once, at its first call; modules that never run are left out. Cost: one forward pass,
    under ``no_grad``.
    """
    order: list[str] = []

    def record(site: Site, _output: Any) -> None:
        if site.call == 0:
            order.append(site.name)

    owners = [mod for mod in module.modules() if any(True for _ in mod.parameters(recurse=False))]
    with hooks(module, {mod: record for mod in owners}), torch.no_grad():
        (call or module)(x)
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


def _scores(test: str, per_measure: dict[str, torch.Tensor], several: bool, meta: dict[str, Any],
            reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Any:
    """One Score per measure (``values = reduce(curves)`` where there are curves): the Score of
    the one measure asked for, or (deprecated) the dict of them."""
    scores = {}
    for s, v in per_measure.items():
        curves, values = (v, reduce(v)) if reduce else (None, v)
        scores[s] = Score(f"{test}_{s}", values, higher_is_better=False, curves=curves,
                          meta={**meta, "similarity": s})
    return scores if several else next(iter(scores.values()))


@renamed(layers="mode")
@metric("model_randomization", higher_is_better=False, needs=("method",))
def model_randomization(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    method: str | Callable[..., Explanation] | None = None,
    mode: str = "cascade",
    similarity: str = "spearman",
    abs: bool = True,
    init: str | Callable[[nn.Module, torch.Generator], None] = "normal",
    seed: int | None = None,
    progress: bool | None = None,
    **method_params: Any,
) -> Score:
    """Model parameter randomisation test: similarity of explanations before/after scrambling.

    Layers are the modules holding parameters, from the output down (reverse order of their
    forward execution). ``mode="cascade"``: stage ``k`` randomises the top ``k`` layers;
    ``"independent"``: stage ``k`` randomises layer ``k`` alone. At each stage the same
    ``method`` (a registry name or a function, with ``method_params``) explains the same
    ``inputs`` for the same target (the original model's, fixed), on a deep copy: the user's
    model is never modified. Given an Explanation as ``inputs``, its method, options, rows and
    target are used (its values are recomputed on the copy, like every stage's).
    ``curves[i, k] = sim(A(x_i), A_k(x_i))``; ``values`` is the last stage (cascade: the fully
    randomised model) or the mean over stages (independent). ``similarity``: ``"spearman"``
    (rank correlation of the flattened maps) or ``"ssim"`` (of the channel-summed 2-D maps, each
    divided by its peak); ``"both"`` or a list still returns a dict of Scores, deprecated.
    ``abs`` compares ``|A|``. A row whose map is constant has no rank correlation (NaN;
    ``Score.mean`` skips it). ``init``: ``"normal"`` draws ``N(0, std(p)²)`` for every parameter
    tensor ``p`` (the scale of the trained layer kept), ``"reset"`` calls the layer's
    ``reset_parameters`` (PyTorch's default initialisation, as Quantus does), or a function
    ``(layer, generator)``. Each layer's draw is seeded from ``(seed, layer index)``; the global
    RNG is untouched. A method that takes ``seed=`` (``smoothgrad``, ``random``) gets the same
    seed at every stage, so its maps differ only where the model does (the ``random`` control
    then scores 1). Lower similarity means the explanation depends on the parameters: the method
    passes. ``layers=`` is the old name of ``mode=`` (deprecated).

    Cost: one deep copy of the model, one forward pass to order the layers, and ``1 + layers``
    runs of ``method``. Reference: Adebayo et al. 2018, "Sanity Checks for Saliency Maps".

    >>> import torch
    >>> from pellucid.zoo import GapCNN
    >>> s = model_randomization(GapCNN(seed=0), torch.rand(4, 1, 8, 8), method="input", seed=0)
    >>> s.meta["layers"], [round(v, 6) for v in s.values.tolist()]
    (['fc', 'conv'], [1.0, 1.0, 1.0, 1.0])
    """
    # warn() counts frames up to the user: _measures, here, metric's timer, renamed's wrapper
    measures, several = _measures(similarity, stacklevel=6)
    check_choice(mode, "mode", MODES)
    if not (callable(init) or init in INITS):
        raise InputError(f"init must be 'normal', 'reset' or a function, got {init!r}")
    used_seed = new_seed(seed)
    fn, name, params, inputs, target = _to_run(inputs, method, target, method_params,
                                               "model_randomization")
    m = wrap(model)
    work = _copy_model(m)
    params = _call_options(fn, _retarget(params, m.module, work.module), used_seed, progress)
    x = work.prepare(inputs)
    original = fn(work, x, target=target, **params)
    with work.explaining():
        order = layer_order(work.module, x[:1], call=work.fn)[::-1]
    if not order:
        raise ModelError(f"{m.name} has no layer with parameters to randomise")
    modules = dict(work.module.named_modules())
    curves: dict[str, list[torch.Tensor]] = {s: [] for s in measures}
    rows = {k: _total([original], k) for k in ("forward_rows", "backward_rows")}
    for k, layer_name in enumerate(progress_bar(order, progress, "model_randomization", unit="layer")):
        layer = modules[layer_name]
        kept = _own_state(layer) if mode == "independent" else {}
        _randomise(layer, init, _layer_seed(used_seed, k))
        e = fn(work, x, target=original.target, **params)
        for key in rows:
            rows[key] += _total([e], key)
        for s, v in similarities(original.values, e.values, measures, abs).items():
            curves[s].append(v)
        with torch.no_grad():
            for key, old in kept.items():
                getattr(layer, key).copy_(old)
    meta = {"method": name, "layers": order, "mode": mode, "abs": abs,
            "init": init if isinstance(init, str) else getattr(init, "__name__", "function"),
            "seed": used_seed, "forward_rows": rows["forward_rows"] + 1,
            "backward_rows": rows["backward_rows"]}
    reduce = (lambda c: c[:, -1]) if mode == "cascade" else (lambda c: torch.nanmean(c, dim=1))
    return _scores("model_randomization", {s: torch.stack(c, dim=1) for s, c in curves.items()},
                   several, meta, reduce)


def _shuffled_model_second(function: Callable[..., Any]) -> Callable[..., Any]:
    """``data_randomization(model, shuffled_model, inputs, ...)`` in the registered form
    ``call(model, explanation, *, shuffled_model, ...)`` (its test options as keywords)."""

    def call(model: Any, explanation: Explanation, *, shuffled_model: Any, **options: Any) -> Any:
        return function(model, shuffled_model, explanation, **options)

    own = list(inspect.signature(call).parameters.values())[:3]
    options = [p for p in inspect.signature(function).parameters.values()
               if p.kind is p.KEYWORD_ONLY and p.name not in ("target", "method")]
    call.__signature__ = inspect.Signature([*own, *options])  # type: ignore[attr-defined]
    call.__name__ = call.__qualname__ = function.__name__
    call.__doc__ = function.__doc__
    return call


@metric("data_randomization", higher_is_better=False, needs=("method", "shuffled_model"),
        adapt=_shuffled_model_second)
def data_randomization(
    model: Any,
    shuffled_model: Any,
    inputs: Any,
    *,
    target: Any = None,
    method: str | Callable[..., Explanation] | None = None,
    similarity: str = "spearman",
    abs: bool = True,
    seed: int | None = None,
    progress: bool | None = None,
    **method_params: Any,
) -> Score:
    """Data randomisation test: similarity of explanations of a model and of its twin trained on
    shuffled labels.

    ``values[i] = sim(A_model(x_i), A_shuffled(x_i))``, both explaining the same target (the
    original model's unless ``target`` is given). ``shuffled_model`` is the same architecture
    trained by the user on randomly permuted labels; options that name a layer must name it by
    its dotted name. ``inputs`` (rows with ``method``, or an Explanation), ``similarity``,
    ``abs`` and ``seed`` (given to a method that takes one, the same for both runs) as in
    :func:`model_randomization`. Low similarity means the explanation depends on what the model
    learned: the method passes.

    Cost: two runs of ``method``. Reference: Adebayo et al. 2018, "Sanity Checks for Saliency
    Maps" (the data randomisation test).
    """
    # warn() counts frames up to the user: _measures, here, metric's timer
    measures, several = _measures(similarity, stacklevel=5)
    fn, name, params, inputs, target = _to_run(inputs, method, target, method_params,
                                               "data_randomization")
    used_seed = new_seed(seed)
    params = _call_options(fn, params, used_seed, progress)
    original = fn(model, inputs, target=target, **params)
    other = fn(shuffled_model, inputs, target=original.target, **params)
    meta = {"method": name, "abs": abs, "seed": used_seed,
            "forward_rows": _total([original, other], "forward_rows"),
            "backward_rows": _total([original, other], "backward_rows")}
    return _scores("data_randomization", similarities(original.values, other.values, measures, abs),
                   several, meta)


def _total(runs: list[Explanation], key: str) -> int:
    return int(sum(e.meta.get(key, 0) for e in runs))
