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

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import InputError, LayerError, ModelError
from ..model import Model
from . import _scores, _structured
from ._common import accuracy, agreement, copy_module, count_parameters, predict, split_data, torch_module
from ._report import PruneReport

__all__ = ["prune", "MASKS_ATTRIBUTE"]

#: Attribute of a pruned copy holding its masks (parameter name -> 0/1 tensor).
MASKS_ATTRIBUTE = "_pellucid_prune_masks"


def _check_amount(amount: Any) -> float:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0.0 <= amount < 1.0:
        raise InputError(
            f"amount is the share of weights (or units) to remove and must lie in [0, 1); got "
            f"{amount!r}"
        )
    return float(amount)


def prune(
    model: Any,
    *,
    amount: float,
    criterion: str = "magnitude",
    structured: bool = False,
    scope: str = "global",
    data: Any = None,
    layers: Sequence[str] | None = None,
    batch_size: int | None = None,
) -> tuple[nn.Module, PruneReport]:
    """Prune a copy of ``model``; returns ``(pruned copy, report)``.

    Options:
        amount: share of weights (unstructured) or of output units (structured) to remove, in [0, 1).
        criterion: ``"magnitude"`` (default), ``"gradient"`` or ``"attribution"`` (see module doc).
        structured: remove whole channels/units and shrink the tensors (default False).
        scope: ``"global"`` (default: rank all layers together) or ``"layer"`` (each layer alike).
        data: inputs or ``(inputs, labels)``; needed by the gradient and attribution criteria;
            with labels the report gives accuracy before and after.
        layers: names of the Conv/Linear layers to prune (default: all of them, or for structured
            pruning all whose units can be removed).
        batch_size: rows per forward pass.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> pruned, report = prune(net, amount=0.5)
        >>> report.removed, int((pruned[0].weight == 0).sum() + (pruned[2].weight == 0).sum())
        (24, 24)
    """
    amount = _check_amount(amount)
    if scope not in ("global", "layer"):
        raise InputError(f"scope must be 'global' or 'layer'; got {scope!r}")
    original = torch_module(model, "prune")
    wrapped = model if isinstance(model, Model) else Model(original, module=original)
    x = y = None
    if data is not None:
        x, y = split_data(wrapped, data)
    _scores.check_criterion(criterion, x)
    before = predict(wrapped, x, batch_size=batch_size) if x is not None else None

    copy = copy_module(original)
    named = dict(copy.named_modules())
    if layers is not None:
        unknown = [n for n in layers if n not in named or n == ""]
        if unknown:
            raise LayerError(f"unknown layer(s) {unknown} in {type(original).__name__}")
        for n in layers:
            _scores.check_layer_kind(named[n], n)
    if structured:
        report_layers, masks = _prune_structured(copy, amount, criterion, scope, x, y, layers, batch_size)
    else:
        report_layers, masks = _prune_unstructured(copy, amount, criterion, scope, x, y, layers, batch_size)
        object.__setattr__(copy, MASKS_ATTRIBUTE, masks)

    after_model = Model(copy, module=copy)
    report = PruneReport(
        method=f"{'structured' if structured else 'unstructured'} {criterion} pruning ({scope})",
        layers=report_layers,
        parameters_before=count_parameters(original),
        parameters_after=count_parameters(copy),
        nonzero_before=sum(int((p != 0).sum()) for p in original.parameters()),
        nonzero_after=sum(int((p != 0).sum()) for p in copy.parameters()),
        masks=masks,
        params={"amount": amount, "criterion": criterion, "structured": structured,
                "scope": scope, "layers": list(layers) if layers is not None else None},
    )
    if x is not None:
        after = predict(after_model, x, batch_size=batch_size)
        report.agreement = agreement(before, after)
        report.accuracy_before = accuracy(wrapped, x, y, batch_size=batch_size)
        report.accuracy_after = accuracy(after_model, x, y, batch_size=batch_size)
    return copy, report


def _prune_unstructured(copy, amount, criterion, scope, x, y, layers, batch_size):
    mods = {n: m for n, m in copy.named_modules()
            if isinstance(m, _structured._PRUNABLE) and (layers is None or n in layers)}
    if not mods:
        raise ModelError(f"{type(copy).__name__} has no Linear or Conv layers to prune")
    names = [f"{n}.weight" for n in mods]
    scores = _scores.weight_scores(copy, names, criterion, x, y, batch_size)
    params = dict(copy.named_parameters())
    masks: dict[str, torch.Tensor] = {}
    if scope == "global":
        flat = torch.cat([scores[k].flatten() for k in names])
        k = round(amount * flat.numel())
        drop = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
        # stable sort: ties broken by position, so the count removed is exactly k
        drop[torch.argsort(flat, stable=True)[:k]] = True
        offset = 0
        for name in names:
            n = scores[name].numel()
            masks[name] = (~drop[offset:offset + n]).reshape(scores[name].shape).to(params[name].dtype)
            offset += n
    else:
        for name in names:
            flat = scores[name].flatten()
            drop = torch.zeros_like(flat, dtype=torch.bool)
            drop[torch.argsort(flat, stable=True)[:round(amount * flat.numel())]] = True
            masks[name] = (~drop).reshape(scores[name].shape).to(params[name].dtype)
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


def _prune_structured(copy, amount, criterion, scope, x, y, layers, batch_size):
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
    scores = _scores.unit_scores(copy, prods, criterion, x, y, batch_size)
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
    shapes = {n: (tuple(m.weight.shape), m.weight.numel() + (m.bias.numel() if getattr(m, "bias", None) is not None else 0))
              for n, m in named.items() if isinstance(m, _structured._PRUNABLE)}
    units = {n: len(scores[n]) for n in found}
    _structured.apply(copy, found, keep)
    rows = []
    for n, m in copy.named_modules():
        if n not in shapes or tuple(m.weight.shape) == shapes[n][0]:
            continue
        now = m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        rows.append({"name": n, "kind": type(m).__name__, "shape_before": shapes[n][0],
                     "shape_after": tuple(m.weight.shape), "parameters": shapes[n][1],
                     "removed": shapes[n][1] - now, "sparsity": (shapes[n][1] - now) / shapes[n][1],
                     "units_before": units.get(n), "units_after": len(keep[n]) if n in keep else None})
    return rows, {}
