"""Structured pruning: cut whole output units of a layer and the matching inputs of the next.

The dependency graph comes from ``torch.fx``: a Conv/Linear layer's units can be removed when its
output reaches exactly one Conv/Linear consumer through operations that act on each channel alone
(activations, pooling, dropout, batch norm — whose statistics are cut alike — and a flatten from
dimension 1, after which the consumer loses the ``H·W`` columns of each removed channel). A
layer whose output reaches the model's output, a residual addition, a concatenation or several
consumers is left whole; naming one explicitly raises :class:`~pellucid.errors.ModelError`.
This is the dependency-graph idea of Torch-Pruning (Fang et al. 2023, "DepGraph: Towards Any
Structural Pruning"), restricted to chains.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ELEMENTWISE_FUNCTIONS = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.mish, torch.sigmoid,
    torch.tanh, F.sigmoid, F.tanh, F.softplus, F.hardtanh, F.hardswish, F.dropout, F.dropout2d,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d,
}
_ELEMENTWISE_METHODS = {"relu", "sigmoid", "tanh", "contiguous"}


@dataclass
class Group:
    """A prunable layer, the channel-wise modules after it, and its one consumer."""

    producer: str
    consumer: str
    norms: list[str] = field(default_factory=list)
    flattened: bool = False


def _flatten_from_1(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool | None:
    """True for a flatten from dim 1, False for another flatten, None for no flatten."""
    if node.op == "call_module" and isinstance(modules[node.target], nn.Flatten):
        m = modules[node.target]
        return m.start_dim == 1 and m.end_dim == -1
    if (node.op == "call_function" and node.target is torch.flatten) or (
        node.op == "call_method" and node.target == "flatten"
    ):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        return start == 1 and end == -1
    return None


def _follow(node: torch.fx.Node, modules: dict[str, nn.Module]) -> tuple[Group | None, str]:
    """Walk from a producer to its consumer; ``(group, "")`` or ``(None, why not)``."""
    group = Group(producer=node.target, consumer="")
    conv = not isinstance(modules[node.target], nn.Linear)
    current = node
    while True:
        users = list(current.users)
        if len(users) != 1:
            return None, f"its output is used by {len(users)} operations"
        (nxt,) = users
        if nxt.op == "output":
            return None, "it produces the model's output"
        if nxt.args[:1] != (current,) or any(
            a is current for a in list(nxt.args[1:]) + list(nxt.kwargs.values())
        ):
            return None, f"its output enters {nxt.name} in an unsupported position"
        flat = _flatten_from_1(nxt, modules)
        if flat is False:
            return None, f"{nxt.name} flattens from a dimension other than 1"
        if flat:
            group.flattened = True
        elif nxt.op == "call_module":
            mod = modules[nxt.target]
            if isinstance(mod, PRUNABLE):
                if getattr(mod, "groups", 1) != 1:
                    return None, f"its consumer {nxt.target} is a grouped convolution"
                if isinstance(mod, nn.Linear) and conv and not group.flattened:
                    return None, f"a Linear ({nxt.target}) reads its channels without a flatten"
                if not isinstance(mod, nn.Linear) and (not conv or group.flattened):
                    return None, f"a convolution ({nxt.target}) follows a flattened or linear output"
                group.consumer = nxt.target
                return group, ""
            if isinstance(mod, _NORMS):
                group.norms.append(nxt.target)
            elif isinstance(mod, nn.PReLU) and mod.num_parameters != 1:
                return None, f"{nxt.target} is a per-channel PReLU"
            elif not isinstance(mod, (*_ELEMENTWISE_MODULES, nn.PReLU)):
                return None, f"its output enters {type(mod).__name__} ({nxt.target})"
        elif nxt.op == "call_function" and nxt.target in _ELEMENTWISE_FUNCTIONS:
            pass
        elif nxt.op == "call_method" and nxt.target in _ELEMENTWISE_METHODS:
            pass
        else:
            what = getattr(nxt.target, "__name__", str(nxt.target))
            if nxt.target in (operator.add, torch.add, torch.cat, "add", "__add__"):
                what = f"{what} (a residual or concatenation)"
            return None, f"its output enters {what}"
        current = nxt


def groups(module: nn.Module) -> tuple[dict[str, Group], dict[str, str]]:
    """Prunable groups by producer name, and why each other Conv/Linear layer is not prunable."""
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception as err:
        raise ModelError(
            f"structured pruning traces the model with torch.fx, which failed ({type(err).__name__}: "
            f"{err}); use structured=False, or make the forward pass traceable"
        ) from err
    modules = dict(module.named_modules())
    found, refused = {}, {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], PRUNABLE):
            continue
        if node.target in found or node.target in refused:
            refused[node.target] = "the layer is called more than once"
            found.pop(node.target, None)
            continue
        if getattr(modules[node.target], "groups", 1) != 1:
            refused[node.target] = "it is a grouped convolution"
            continue
        group, why = _follow(node, modules)
        if group is None:
            refused[node.target] = why
        else:
            found[node.target] = group
    return found, refused


def _slice(mod: nn.Module, name: str, keep: torch.Tensor, dim: int) -> None:
    t = getattr(mod, name)
    if t is None:
        return
    new = t.detach().index_select(dim, keep.to(t.device)).clone()
    if isinstance(t, nn.Parameter):
        setattr(mod, name, nn.Parameter(new, requires_grad=t.requires_grad))
    else:
        setattr(mod, name, new)


def apply(module: nn.Module, found: dict[str, Group], keep: dict[str, torch.Tensor]) -> None:
    """Cut ``module`` in place: every producer keeps the units ``keep[name]`` (sorted indices)."""
    modules = dict(module.named_modules())
    for name, idx in keep.items():
        g = found[name]
        prod, cons = modules[g.producer], modules[g.consumer]
        old = prod.weight.shape[0]
        _slice(prod, "weight", idx, 0)
        _slice(prod, "bias", idx, 0)
        if isinstance(prod, nn.Linear):
            prod.out_features = len(idx)
        else:
            prod.out_channels = len(idx)
        for nname in g.norms:
            bn = modules[nname]
            for attr in ("weight", "bias", "running_mean", "running_var"):
                _slice(bn, attr, idx, 0)
            bn.num_features = len(idx)
        if isinstance(cons, nn.Linear):
            cols = idx
            if g.flattened:
                per = cons.in_features // old
                if per * old != cons.in_features:
                    raise ModelError(
                        f"{g.consumer} has {cons.in_features} inputs, not a multiple of the "
                        f"{old} channels of {g.producer}; cannot map channels to columns"
                    )
                cols = (idx[:, None] * per + torch.arange(per)).flatten()
            _slice(cons, "weight", cols, 1)
            cons.in_features = len(cols)
        else:
            _slice(cons, "weight", idx, 1)
            cons.in_channels = len(idx)
