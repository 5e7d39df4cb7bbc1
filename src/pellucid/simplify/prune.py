"""Network pruning: score the weights (or whole units), remove the lowest, report the cost.

``prune`` never touches the user's model: it prunes a deep copy and returns it with a
:class:`~pellucid.simplify.PruneReport`.

- Unstructured (default): the ``round(amount · N)`` lowest-scoring weights of the Conv/Linear
  layers are set to exactly zero — over all layers together (``scope="global"``) or in each layer
  alike (``scope="layer"``). The masks are kept (``report.masks`` and on the copy) so that
  :func:`~pellucid.simplify.fine_tune` keeps the pruned weights at zero. Unlike
  ``torch.nn.utils.prune`` no reparametrisation (``weight_orig``/``weight_mask``) is left on the
  returned model: its ``state_dict`` has the same keys as the original.
- Structured (``structured=True``): whole output channels of convolutions and units of linear
  layers are cut out, the next layer's matching inputs with them, so the tensors really shrink
  and the copy runs on the same inputs with fewer parameters (dependencies found with
  ``torch.fx``; see ``_structured``). ``amount`` is then the share of units removed; with
  ``scope="global"`` each layer's unit scores are divided by their mean before ranking (so layers
  of different scale compete fairly) and every layer keeps at least one unit.

Cost: ``magnitude`` is free; ``gradient`` and ``attribution`` take one forward and backward pass
over ``data``, plus one forward pass before and after for the report. References: Han et al.
2015; Li et al. 2017; Molchanov et al. 2019; Yeom et al. 2021 (see ``_scores``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._common import check_choice, check_fraction
from ..errors import LayerError, ModelError
from . import _scores, _structured
from ._data import split_data
from ._report import PruneReport, Simplified, recorded
from ._training import agreement, as_module, copy_module, count_parameters, predict

__all__ = ["prune", "MASKS_ATTRIBUTE"]

#: Attribute of a pruned copy holding its masks (parameter name -> 0/1 tensor).
MASKS_ATTRIBUTE = "_pellucid_prune_masks"


@recorded()
def prune(
    model: Any,
    data: Any = None,
    *,
    amount: float,
    criterion: str = "magnitude",
    structured: bool = False,
    scope: str = "global",
    layers: Sequence[str] | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Simplified:
    """Prune a copy of ``model``; returns ``Simplified(model=pruned copy, report=PruneReport)``.

    Options:
        data: inputs or ``(inputs, labels)``; needed by the gradient and attribution criteria;
            with labels the report gives accuracy before and after.
        amount: share of weights (unstructured) or of output units (structured) to remove, in [0, 1).
        criterion: ``"magnitude"`` (default), ``"gradient"`` or ``"attribution"`` (see module doc).
        structured: remove whole channels/units and shrink the tensors (default False).
        scope: ``"global"`` (default: rank all layers together) or ``"layer"`` (each layer alike).
        layers: names of the Conv/Linear layers to prune (default: all of them, or for structured
            pruning all whose units can be removed).
        batch_size: rows per forward pass.
        progress: a progress bar over the scoring passes on runs longer than two seconds.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> pruned, report = prune(net, amount=0.5)
        >>> report.removed, int((pruned[0].weight == 0).sum() + (pruned[2].weight == 0).sum())
        (24, 24)
    """
    amount = check_fraction(amount, "amount (the share of weights or units to remove)", closed=False,
                            allow_zero=True)
    check_choice(scope, "scope", ("global", "layer"))
    original, wrapped = as_module(model, "prune")
    x = y = None
    if data is not None:
        x, y = split_data(wrapped, data)
    _scores.check_criterion(criterion, x)
    before = predict(wrapped, x, batch_size=batch_size, progress=progress) if x is not None else None

    copy, after_model = copy_module(original)
    named = dict(copy.named_modules())
    if layers is not None:
        unknown = [n for n in layers if n not in named or n == ""]
        if unknown:
            raise LayerError(f"unknown layer(s) {unknown} in {type(original).__name__}")
        for n in layers:
            _scores.check_layer_kind(named[n], n)
    how = (_prune_structured if structured else _prune_unstructured)
    report_layers, masks = how(copy, amount, criterion, scope, x, y, layers, batch_size, progress)
    if not structured:
        object.__setattr__(copy, MASKS_ATTRIBUTE, masks)

    report = PruneReport(
        method=f"{'structured' if structured else 'unstructured'} {criterion} pruning ({scope})",
        layers=report_layers,
        parameters_before=count_parameters(original),
        parameters_after=count_parameters(copy),
        nonzero_before=sum(int((p != 0).sum()) for p in original.parameters()),
        nonzero_after=sum(int((p != 0).sum()) for p in copy.parameters()),
        masks=masks,
    )
    if x is not None:
        after = predict(after_model, x, batch_size=batch_size, progress=progress)
        report.agreement = agreement(before, after)
        report.accuracy_before = None if y is None else agreement(before, y)
        report.accuracy_after = None if y is None else agreement(after, y)
    return Simplified(copy, report)


def _lowest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """True at the ``k`` lowest entries; a stable sort breaks ties by position, so exactly ``k``."""
    drop = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    drop[torch.argsort(flat, stable=True)[:k]] = True
    return drop


def _prune_unstructured(copy, amount, criterion, scope, x, y, layers, batch_size, progress):
    mods = {n: m for n, m in copy.named_modules()
            if isinstance(m, _structured.PRUNABLE) and (layers is None or n in layers)}
    if not mods:
        raise ModelError(f"{type(copy).__name__} has no Linear or Conv layers to prune")
    names = [f"{n}.weight" for n in mods]
    scores = _scores.weight_scores(copy, names, criterion, x, y, batch_size, progress)
    params = dict(copy.named_parameters())
    if scope == "global":
        flat = torch.cat([scores[k].flatten() for k in names])
        drops = torch.split(_lowest(flat, round(amount * flat.numel())), [scores[k].numel() for k in names])
    else:
        drops = [_lowest(scores[k].flatten(), round(amount * scores[k].numel())) for k in names]
    masks = {k: (~d).reshape(scores[k].shape).to(params[k].dtype) for k, d in zip(names, drops)}
    rows = []
    with torch.no_grad():
        for (mname, mod), name in zip(mods.items(), names):
            params[name].mul_(masks[name])
            w = params[name]
            zeros = int((masks[name] == 0).sum())
            rows.append({"name": mname, "kind": type(mod).__name__, "shape_before": tuple(w.shape),
                         "shape_after": tuple(w.shape), "parameters": w.numel(), "removed": zeros,
                         "sparsity": float((w == 0).sum()) / w.numel()})
    return rows, masks


def _size(layer: torch.nn.Module) -> int:
    """Weights and bias entries of a Conv/Linear layer."""
    return layer.weight.numel() + (layer.bias.numel() if layer.bias is not None else 0)


def _prune_structured(copy, amount, criterion, scope, x, y, layers, batch_size, progress):
    found, refused = _structured.groups(copy)
    if layers is not None:
        bad = {n: refused.get(n, "it is not a Conv/Linear layer") for n in layers if n not in found}
        if bad:
            raise ModelError(
                "cannot remove units of " + "; ".join(f"{n}: {why}" for n, why in bad.items())
                + ". Structured pruning needs a chain in which each pruned layer feeds exactly one "
                "Conv/Linear through per-channel operations; pass other layers, or structured=False"
            )
        found = {n: g for n, g in found.items() if n in layers}
    if not found:
        why = "; ".join(f"{n}: {w}" for n, w in refused.items())
        raise ModelError(f"no layer of {type(copy).__name__} can be pruned structurally ({why})")
    named = dict(copy.named_modules())
    prods = {n: named[n] for n in found}
    scores = _scores.unit_scores(copy, prods, criterion, x, y, batch_size, progress)
    keep: dict[str, torch.Tensor] = {}
    if scope == "global":
        normed = {n: s / s.mean().clamp_min(1e-12) for n, s in scores.items()}
        flat = torch.cat([normed[n] for n in found])
        owner = torch.cat([torch.full((len(normed[n]),), i) for i, n in enumerate(found)])
        k = round(amount * flat.numel())
        left = {n: len(normed[n]) for n in found}
        removed = {n: [] for n in found}
        names = list(found)
        for j in torch.argsort(flat, stable=True).tolist():
            if k == 0:
                break
            n = names[int(owner[j])]
            if left[n] > 1:
                left[n] -= 1
                start = sum(len(normed[m]) for m in names[:int(owner[j])])
                removed[n].append(j - start)
                k -= 1
        for n in names:
            mask = torch.ones(len(scores[n]), dtype=torch.bool)
            mask[removed[n]] = False
            keep[n] = torch.nonzero(mask).flatten()
    else:
        for n, s in scores.items():
            c = min(round(amount * len(s)), len(s) - 1)
            keep[n] = torch.sort(torch.argsort(s.cpu(), stable=True, descending=True)[:len(s) - c]).values
    shapes = {n: (tuple(m.weight.shape), _size(m)) for n, m in named.items()
              if isinstance(m, _structured.PRUNABLE)}
    units = {n: len(scores[n]) for n in found}
    _structured.apply(copy, found, keep)
    rows = []
    for n, m in copy.named_modules():
        if n not in shapes or tuple(m.weight.shape) == shapes[n][0]:
            continue
        now = _size(m)
        rows.append({"name": n, "kind": type(m).__name__, "shape_before": shapes[n][0],
                     "shape_after": tuple(m.weight.shape), "parameters": shapes[n][1],
                     "removed": shapes[n][1] - now, "sparsity": (shapes[n][1] - now) / shapes[n][1],
                     "units_before": units.get(n), "units_after": len(keep[n]) if n in keep else None})
    return rows, {}
