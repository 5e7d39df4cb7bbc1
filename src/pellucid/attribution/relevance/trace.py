"""See every operation of a model — modules and functional calls alike — with ``torch.fx``.

Zennit and Captum attach rules to ``nn.Module`` objects only, so ``F.relu(x)``, ``x + y`` or
``F.conv2d(x, self.w)`` in a ``forward`` are invisible to them. pellucid traces the model once
(cached per model; a changed submodule, parameter or buffer invalidates the cache) and sorts every
node of the graph into a *kind*; each method then says what it does with each kind, and refuses a
model containing a kind it has no rule for *before* running it:

``linear``      positively homogeneous linear ops — reshapes, sums, residual additions, average
                pooling, interpolation, padding, scaling by constants. Their gradient splits
                relevance in proportion to the inputs (Euler), so they need no rule.
``relu``        ReLU, LeakyReLU, PReLU (piecewise linear and homogeneous: gradient = pass-through).
``maxpool``     max pooling (winner takes all).
``avgpool``     average pooling (linear; LRP gives it Zennit's stabilised z-rule, ``Norm``).
``activation``  other elementwise activations (tanh, GELU, SiLU, ELU, sigmoid, ...).
``affine``      Linear / Conv1d-3d modules and ``F.linear`` / ``F.conv*d`` with parameter weights.
``batchnorm``   BatchNorm modules (merged into the preceding affine layer when possible).
``layernorm``   LayerNorm modules and ``F.layer_norm``.
``embedding``   Embedding modules and ``F.embedding``.
``const``       anything not depending on the input (shapes, constants, parameters).
``unknown``     everything else (attention blocks, softmax, products of two activations, ...).

In-place operations (``nn.ReLU(inplace=True)``, ``x.relu_()``, ``x[i] = v``) are rewritten to run
out of place with the same meaning (:mod:`._inplace`), so that a rule reading an operation's
input sees its true value; a call site of a module used several times is a node of its own.
"""
from __future__ import annotations

import builtins
import dataclasses
import operator
import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ...errors import ModelError
from ._inplace import functionalize, out_of_place, plain_target
from .rules import Affine

__all__ = ["Traced", "trace", "describe", "original"]

_LINEAR_MODULES = (
    nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.AlphaDropout, nn.Upsample, nn.ZeroPad1d, nn.ZeroPad2d,
    nn.ZeroPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d,
    nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d, nn.PixelShuffle,
    nn.PixelUnshuffle, nn.ChannelShuffle,
)
_RELU_MODULES = (nn.ReLU, nn.LeakyReLU, nn.PReLU)
_ACTIVATION_MODULES = (
    nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Mish, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.ReLU6, nn.CELU, nn.SELU, nn.Softsign, nn.LogSigmoid,
)
_AVGPOOL_MODULES = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
                    nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_AVGPOOL_FUNCS = {F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d,
                  F.adaptive_avg_pool2d, F.adaptive_avg_pool3d}
_MAXPOOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
                    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_AFFINE_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

# Shape-only operations: each output element is one input element.
_SHAPE_FUNCS = {torch.flatten, torch.reshape, torch.transpose, torch.permute, torch.squeeze,
                torch.unsqueeze, torch.clone, torch.movedim, operator.getitem, F.dropout,
                F.dropout1d, F.dropout2d, F.dropout3d, torch.t}
_SHAPE_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze",
                  "unsqueeze", "clone", "float", "double", "to", "movedim", "t", "unflatten",
                  "view_as", "reshape_as", "type_as"}
_SHAPE_MODULES = (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
                  nn.Dropout3d, nn.AlphaDropout)

_LINEAR_FUNCS = _SHAPE_FUNCS | {
    operator.add, operator.iadd, operator.sub, operator.isub, operator.neg, operator.pos,
    torch.add, torch.sub, torch.neg, torch.cat, torch.concat, torch.stack, torch.mean, torch.sum,
    torch.chunk, torch.split, torch.narrow, torch.roll, F.interpolate,
    F.pixel_shuffle, F.pixel_unshuffle, F.pad,
}
_LINEAR_METHODS = _SHAPE_METHODS | {"add", "add_", "sub", "sub_", "neg", "mean", "sum", "expand",
                                    "expand_as", "repeat", "chunk", "split", "narrow", "roll"}
_SCALE_FUNCS = {operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv,
                torch.div}
_SCALE_METHODS = {"mul", "mul_", "div", "div_"}
_RELU_FUNCS = {F.relu, torch.relu, F.leaky_relu, F.prelu}
_RELU_METHODS = {"relu"}
_ACTIVATION_FUNCS = {F.gelu, F.silu, F.elu, torch.tanh, torch.sigmoid, F.tanh, F.sigmoid,
                     F.softplus, F.mish, F.hardswish, F.hardsigmoid, F.hardtanh, F.relu6, F.selu,
                     F.celu, F.softsign, F.logsigmoid}
_ACTIVATION_METHODS = {"tanh", "sigmoid"}
_MAXPOOL_FUNCS = {F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d,
                  F.adaptive_max_pool2d, F.adaptive_max_pool3d}
_AFFINE_FUNCS = {F.linear: nn.Linear, F.conv1d: nn.Conv1d, F.conv2d: nn.Conv2d,
                 F.conv3d: nn.Conv3d}
_META_METHODS = {"size", "dim", "numel", "ndimension", "nelement"}
_META_FUNCS = {builtins.getattr, builtins.len}


@dataclasses.dataclass
class Traced:
    """A traced model: its graph, the kind of every node, and its affine layers."""

    gm: fx.GraphModule
    kinds: dict[fx.Node, str]
    affine: dict[fx.Node, Callable[[], Affine]]  # node -> builder of its Affine (current params)
    names: dict[fx.Node, str]  # node -> a readable name (module path or op)
    from_input: set[fx.Node]  # the model's input, up to shape-only operations
    placeholder: fx.Node
    signature: tuple
    inplace: dict[fx.Node, fx.Node] = dataclasses.field(default_factory=dict)  # node -> overwritten
    checked: bool = False  # the graph's outputs were compared with the model's once

    def nodes(self, kind: str) -> list[fx.Node]:
        return [n for n, k in self.kinds.items() if k == kind]

    def describe(self, node: fx.Node) -> str:
        return describe(node, self.gm)


def describe(node: fx.Node, gm: fx.GraphModule | None = None) -> str:
    """``'layer1.0 (BatchNorm2d)'`` / ``'torch.matmul (node matmul_1)'`` for messages; the call
    site ``'layer1.0.relu@1'`` of a module called several times."""
    if node.op == "call_module" and gm is not None:
        calls = [n for n in gm.graph.nodes if n.op == "call_module" and n.target == node.target]
        site = f"{node.target}@{calls.index(node)}" if len(calls) > 1 else node.target
        return f"{site!r} ({type(gm.get_submodule(node.target)).__name__})"
    if node.op == "call_method":
        return f"the method .{node.target}() (graph node {node.name!r})"
    target = getattr(node.target, "__qualname__", None) or getattr(node.target, "__name__", node.target)
    module = getattr(node.target, "__module__", None) or ""
    label = f"{module}.{target}" if module and module not in ("_operator", "builtins") else str(target)
    return f"the call {label} (graph node {node.name!r})"


def original(traced: Traced, node: fx.Node) -> Callable[..., Any]:
    """The node's operation, callable with the node's arguments as the graph passes them; an
    in-place operation runs on a copy of its input (which keeps its value)."""
    if node.op == "call_module":
        fn = traced.gm.get_submodule(node.target)
    elif node.op == "call_method":
        fn = lambda self, *a, **k: getattr(self, node.target)(*a, **k)
    else:
        fn = node.target
    return out_of_place(fn, node) if node in traced.inplace else fn


def _signature(model: nn.Module) -> tuple:
    """Identity of every submodule, parameter and buffer, and of the forward code."""
    return (
        # training flags too: a traced F.dropout(x, training=self.training) bakes the flag in;
        # inplace flags, as the graph is rewritten for in-place modules
        tuple((n, id(m), type(m).forward, m.training, getattr(m, "inplace", None))
              for n, m in model.named_modules()),
        tuple(id(p) for p in model.parameters()),
        tuple(id(b) for b in model.buffers()),
    )


def require_module(m: Any, method: str) -> None:
    """The methods of this package trace the model: a plain callable gets a clear error."""
    if m.module is None:
        raise ModelError(f"{method} needs a torch.nn.Module (it traces the model's layers); "
                         f"{m.name} is a plain callable")


_CACHE: weakref.WeakKeyDictionary[nn.Module, Traced] = weakref.WeakKeyDictionary()


def trace(model: nn.Module) -> Traced:
    """Trace ``model`` with ``torch.fx`` (cached) and sort its nodes; raises :class:`ModelError`
    if the model cannot be traced (data-dependent control flow)."""
    sig = _signature(model)
    hit = _CACHE.get(model)
    if hit is not None and hit.signature == sig:
        return hit
    try:
        gm = fx.symbolic_trace(model)
    except Exception as err:  # fx raises TraceError, TypeError, NotImplementedError, ...
        raise ModelError(
            f"{type(model).__name__} could not be traced with torch.fx ({type(err).__name__}: "
            f"{err}). LRP, DeepLIFT and guided backprop trace the forward pass to see functional "
            "calls (F.relu, x + y); make forward free of data-dependent Python control flow, or "
            "move such code into a submodule"
        ) from err
    inplace = functionalize(gm, lambda node: describe(node, gm))
    traced = _classify(gm, sig)
    traced.inplace = inplace
    _CACHE[model] = traced
    return traced


def _carries(node: Any, carrying: set[fx.Node]) -> bool:
    found = []
    fx.node.map_arg(node, lambda n: found.append(n in carrying))
    return any(found)


def _classify(gm: fx.GraphModule, sig: tuple) -> Traced:
    kinds: dict[fx.Node, str] = {}
    affine: dict[fx.Node, Callable[[], Affine]] = {}
    names: dict[fx.Node, str] = {}
    carrying: set[fx.Node] = set()
    from_input: set[fx.Node] = set()
    placeholder = None
    for node in gm.graph.nodes:
        names[node] = node.target if node.op == "call_module" else node.name
        if node.op == "placeholder":
            if placeholder is None:
                placeholder = node
                carrying.add(node)
                from_input.add(node)
            kinds[node] = "input" if node is placeholder else "const"
            continue
        if node.op in ("get_attr", "output"):
            kinds[node] = "const" if node.op == "get_attr" else "output"
            continue
        inputs = [a for a in node.all_input_nodes if a in carrying]
        if not inputs:
            kinds[node] = "const"
            continue
        kind = _kind(node, gm, carrying)
        if kind == "meta":
            kinds[node] = "const"
            continue
        carrying.add(node)
        kinds[node] = kind
        if kind == "affine":
            affine[node] = _affine_builder(node, gm)
            if node.op == "call_function":
                names[node] = affine[node]().name
        if len(inputs) == 1 and inputs[0] in from_input and _is_shape_only(node, gm):
            from_input.add(node)
    if placeholder is None:
        raise ModelError("the traced model has no input")
    return Traced(gm, kinds, affine, names, from_input, placeholder, sig)


def _is_shape_only(node: fx.Node, gm: fx.GraphModule) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), _SHAPE_MODULES)
    if node.op == "call_method":
        return plain_target(node) in _SHAPE_METHODS
    return plain_target(node) in _SHAPE_FUNCS


def _kind(node: fx.Node, gm: fx.GraphModule, carrying: set[fx.Node]) -> str:
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        for kind, types in (("affine", _AFFINE_MODULES), ("relu", _RELU_MODULES),
                            ("activation", _ACTIVATION_MODULES), ("maxpool", _MAXPOOL_MODULES),
                            ("avgpool", _AVGPOOL_MODULES),
                            ("batchnorm", _BN_MODULES), ("layernorm", (nn.LayerNorm,)),
                            ("embedding", (nn.Embedding,))):
            if type(mod) in types:
                return kind
        return "linear" if type(mod) in _LINEAR_MODULES else "unknown"
    if node.op == "call_method":
        name = plain_target(node)
        if name in _META_METHODS:
            return "meta"
        if name in _LINEAR_METHODS:
            return "linear"
        if name in _SCALE_METHODS:
            return _scale_kind(node, carrying, divide=name.startswith("div"))
        if name in _RELU_METHODS:
            return "relu"
        if name in _ACTIVATION_METHODS:
            return "activation"
        return "unknown"
    target = plain_target(node)
    if target in _META_FUNCS:
        return "meta"
    if target is F.pad:
        mode = node.kwargs.get("mode", node.args[2] if len(node.args) > 2 else "constant")
        value = node.kwargs.get("value", node.args[3] if len(node.args) > 3 else 0.0)
        return "linear" if mode != "constant" or not value else "unknown"
    if target in _LINEAR_FUNCS:
        return "linear"
    if target in _SCALE_FUNCS:
        return _scale_kind(node, carrying, divide=target in (operator.truediv,
                                                             operator.itruediv, torch.div))
    if target in _RELU_FUNCS:
        return "relu"
    if target in _ACTIVATION_FUNCS:
        return "activation"
    if target in _MAXPOOL_FUNCS:
        return "maxpool"
    if target in _AVGPOOL_FUNCS:
        return "avgpool"
    if target in _AFFINE_FUNCS:
        args = _affine_args(node)
        ok = (args["weight"] is not None and getattr(args["weight"], "op", None) == "get_attr"
              and (args["bias"] is None or getattr(args["bias"], "op", None) == "get_attr")
              and not any(isinstance(v, fx.Node) for k, v in args.items()
                          if k not in ("input", "weight", "bias")))
        return "affine" if ok else "unknown"
    if target is F.layer_norm:
        return "layernorm"
    if target is F.embedding:
        return "embedding"
    return "unknown"


def _scale_kind(node: fx.Node, carrying: set[fx.Node], *, divide: bool) -> str:
    """``a * c`` and ``a / c`` with ``c`` not depending on the input are linear; ``a * b`` is not."""
    args = list(node.args) + list(node.kwargs.values())
    flags = [_carries(a, carrying) for a in args[:2]]
    if divide:
        return "linear" if flags and flags[0] and not any(flags[1:]) else "unknown"
    return "linear" if sum(flags) == 1 else "unknown"


_AFFINE_PARAMS = {
    nn.Linear: ("input", "weight", "bias"),
    nn.Conv1d: ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
}
_AFFINE_PARAMS[nn.Conv2d] = _AFFINE_PARAMS[nn.Conv3d] = _AFFINE_PARAMS[nn.Conv1d]


def _affine_args(node: fx.Node) -> dict[str, Any]:
    names = _AFFINE_PARAMS[_AFFINE_FUNCS[node.target]]
    out = dict(zip(names, node.args))
    out.update(node.kwargs)
    out.setdefault("bias", None)
    out.setdefault("weight", None)
    return out


def _affine_builder(node: fx.Node, gm: fx.GraphModule) -> Callable[[], Affine]:
    """A function building the node's :class:`Affine` from the parameters as they are now."""
    if node.op == "call_module":
        name = node.target

        def build() -> Affine:
            mod = gm.get_submodule(name)
            if isinstance(mod, nn.Linear):
                op = F.linear
            else:
                op = mod._conv_forward
            return Affine(name, type(mod), op, mod.weight, mod.bias, getattr(mod, "groups", 1))
        return build

    kind = _AFFINE_FUNCS[node.target]
    args = _affine_args(node)
    extra = {k: v for k, v in args.items() if k not in ("input", "weight", "bias")}
    fn = node.target
    w_target = args["weight"].target
    b_target = args["bias"].target if args["bias"] is not None else None
    owner = w_target[: -len(".weight")] if w_target.endswith(".weight") else w_target

    def build() -> Affine:
        w = _fetch(gm, w_target)
        b = _fetch(gm, b_target) if b_target is not None else None
        return Affine(owner, kind, lambda a, ww, bb: fn(a, ww, bb, **extra), w, b,
                      int(extra.get("groups", 1)))
    return build


def _fetch(gm: fx.GraphModule, target: str) -> torch.Tensor:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj
