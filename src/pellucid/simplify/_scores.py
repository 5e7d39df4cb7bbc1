"""Importance scores of weights and units for :func:`~pellucid.simplify.prune`.

Three criteria, each a tensor shaped like the weight (unstructured) or one score per output unit
(structured); the smallest scores are removed first.

- ``magnitude``: ``|w|``; per unit the L1 norm of its incoming weights (Han et al. 2015, "Learning
  both Weights and Connections for Efficient Neural Networks"; Li et al. 2017, "Pruning Filters
  for Efficient ConvNets"). Free: no data.
- ``gradient``: first-order Taylor estimate of the loss change when a weight is zeroed,
  ``|w · ∂L/∂w|``; per unit ``|Σ_{w in unit} w · ∂L/∂w|`` (Molchanov et al. 2019, "Importance
  Estimation for Neural Network Pruning"). L is the cross-entropy on the labels, or on the
  model's own predictions without labels. Cost: one forward and backward pass over the data.
- ``attribution``: how much the weight or unit contributes to the model's decision, as gradient ×
  input attribution of the predicted-class output, summed over rows in absolute value:
  ``Σ_i |w · ∂f_t(x_i)/∂w|`` per weight (per-example gradients with ``torch.func``), and
  ``Σ_i |Σ_pos a · ∂f_t(x_i)/∂a|`` for a unit with activation ``a`` (Yeom et al. 2021, "Pruning by
  Explaining", with gradient × activation in place of LRP). Cost: one forward and backward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._common import check_choice
from .._hooks import capture
from ..errors import InputError, ModelError, NotDifferentiableError
from ..model import Model, gather, select_target
from ._structured import PRUNABLE

CRITERIA = ("magnitude", "gradient", "attribution")


def _loss_grads(module: nn.Module, model: Model, x: torch.Tensor, y: torch.Tensor | None,
                names: list[str], batch_size: int | None, progress: bool | None) -> dict[str, torch.Tensor]:
    """Mean-loss gradients of the named parameters over all rows, accumulated in chunks."""
    params = dict(module.named_parameters())
    grads = {k: torch.zeros_like(params[k]) for k in names}
    for p in module.parameters():
        p.requires_grad_(True)
    with torch.enable_grad():
        for rows, labels in model.chunks(len(x), x.shape[1:], target=y, batch_size=batch_size,
                                         progress=progress, desc="scores"):
            out = model.forward(x[rows])
            wanted = out.detach().argmax(dim=1) if labels is None else labels.to(out.device)
            loss = F.cross_entropy(out, wanted, reduction="sum") / len(x)
            gs = torch.autograd.grad(loss, [params[k] for k in names], allow_unused=True)
            for k, g in zip(names, gs):
                if g is not None:
                    grads[k] += g
    return grads


def weight_scores(module: nn.Module, names: list[str], criterion: str, x: torch.Tensor | None,
                  y: torch.Tensor | None, batch_size: int | None, progress: bool | None
                  ) -> dict[str, torch.Tensor]:
    """One score per weight of each named parameter of ``module`` (a private copy)."""
    params = dict(module.named_parameters())
    if criterion == "magnitude":
        return {k: params[k].detach().abs() for k in names}
    model = Model(module, module=module)
    if criterion == "gradient":
        grads = _loss_grads(module, model, x, y, names, batch_size, progress)
        return {k: (params[k].detach() * grads[k]).abs() for k in names}
    # attribution: per-example |w * df_t/dw|, summed over rows
    from torch.func import functional_call, grad, vmap

    fixed = {k: v.detach() for k, v in module.named_parameters()}
    fixed.update(dict(module.named_buffers()))

    def explained(pruned: dict[str, torch.Tensor], row: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = functional_call(module, {**fixed, **pruned}, (row[None],))
        return torch.index_select(out.reshape(-1), 0, t.reshape(1)).sum()

    per_row = vmap(grad(explained), in_dims=(None, 0, 0))
    scores = {k: torch.zeros_like(params[k]) for k in names}
    size = min(model.batch_rows(x.shape[1:], batch_size=batch_size), 64)  # per-example grads: rows x params
    with torch.no_grad():
        targets = select_target(model.outputs(x, batch_size=batch_size, progress=False), None)
    for rows, t in model.chunks(len(x), x.shape[1:], target=targets, batch_size=size,
                                progress=progress, desc="scores"):
        try:
            g = per_row({k: fixed[k] for k in names}, x[rows], t.to(x.device))
        except Exception as err:  # vmap refuses data-dependent control flow, in-place ops, ...
            raise NotDifferentiableError(
                f"criterion='attribution' needs per-example gradients through torch.func, which "
                f"failed on this model ({err}); use criterion='gradient' or 'magnitude'"
            ) from err
        for k in names:
            scores[k] += (fixed[k] * g[k]).abs().sum(dim=0)
    return scores


def unit_scores(module: nn.Module, layers: dict[str, nn.Module], criterion: str,
                x: torch.Tensor | None, y: torch.Tensor | None, batch_size: int | None,
                progress: bool | None) -> dict[str, torch.Tensor]:
    """One score per output unit (channel or neuron) of each layer in ``layers`` (name -> module)."""
    if criterion == "magnitude":
        return {n: m.weight.detach().abs().flatten(1).sum(dim=1) for n, m in layers.items()}
    model = Model(module, module=module)
    if criterion == "gradient":
        names = []
        for n, m in layers.items():
            names.append(f"{n}.weight")
            if m.bias is not None:
                names.append(f"{n}.bias")
        grads = _loss_grads(module, model, x, y, names, batch_size, progress)
        params = dict(module.named_parameters())
        out = {}
        for n, m in layers.items():
            s = (params[f"{n}.weight"].detach() * grads[f"{n}.weight"]).flatten(1).sum(dim=1)
            if m.bias is not None:
                s = s + params[f"{n}.bias"].detach() * grads[f"{n}.bias"]
            out[n] = s.abs()
        return out
    # attribution: gradient x activation of each unit's output, per row, in absolute value
    scores = {n: torch.zeros(m.weight.shape[0], device=m.weight.device) for n, m in layers.items()}
    with capture(module, list(layers)) as (run, seen), torch.enable_grad():
        for rows, _ in model.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=progress,
                                    desc="scores"):
            run.reset()
            for calls in seen.values():
                calls.clear()
            out = model.forward(x[rows].detach().requires_grad_(True))  # so activations carry a graph
            for n in layers:  # one activation per row is needed: a reused layer is refused
                run.check_once(n)
            acts = [seen[n][0] for n in layers]
            chosen = gather(out, select_target(out, None)).sum()
            for n, a, g in zip(layers, acts, torch.autograd.grad(chosen, acts, allow_unused=True)):
                if g is None:
                    continue
                ga = a.detach() * g  # per unit: summed over positions first, then |.| per row
                per_unit = ga.flatten(2).sum(dim=2) if ga.dim() > 2 else ga
                scores[n] += per_unit.abs().sum(dim=0)
    return scores


def check_criterion(criterion: str, x: torch.Tensor | None) -> None:
    check_choice(criterion, "criterion", CRITERIA)
    if criterion != "magnitude" and x is None:
        raise InputError(f"criterion={criterion!r} needs data: pass data=inputs or (inputs, labels)")


def check_layer_kind(module: nn.Module, name: str) -> None:
    if not isinstance(module, PRUNABLE):
        raise ModelError(f"layer {name!r} is a {type(module).__name__}; prune handles Linear and Conv layers")
