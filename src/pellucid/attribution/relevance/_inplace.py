"""In-place operations in a traced graph, run out of place with the same meaning.

Why: a modified backward pass replaces some operations with handlers that read an operation's
input *after* computing its output (DeepLIFT's rescale rule needs ``Δa`` next to ``Δy``). An
in-place operation — ``nn.ReLU(inplace=True)``, ``F.relu(x, inplace=True)``, ``x.relu_()``,
``x += y`` on a tensor, ``x[i] = v`` — has by then overwritten its input with its output, so
the handler sees ``a = f(a)``: on a torchvision ResNet DeepLIFT's multipliers all became 1 and
summation to delta failed by 50-200% (issue 14), silently.

What: :func:`functionalize` finds every in-place node that depends on the model's input and
rewrites the graph so that nothing after it reads the overwritten tensor: later readers of the
input node read the in-place node instead (which is what the tensor holds after the
operation). :func:`out_of_place` then runs such a node on a copy of its input, so the input
keeps its value for every handler and the output is the same.

Refused (:class:`~pellucid.errors.UnsupportedLayerError`, before anything runs): an in-place
operation whose input shares memory — through views, reshapes, slices, ``Identity`` or
``Dropout`` — with a tensor read afterwards (the overwrite would show there too, and the rewrite
cannot follow it), and one that overwrites a parameter or buffer of the model.
"""
from __future__ import annotations

import builtins
import inspect
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ...errors import UnsupportedLayerError

__all__ = ["functionalize", "out_of_place", "plain_target", "is_inplace"]

_INPLACE_OPERATORS = {
    operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
    operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor, operator.ilshift,
    operator.irshift, operator.imatmul, operator.setitem,
}
#: Methods ending in "_" that change no values.
_NOT_MUTATING = {"requires_grad_", "share_memory_"}

# Operations whose result may share memory with their first argument (views; and ops that
# return their input itself when nothing needs to change: .to(), .contiguous(), eval Dropout).
_ALIAS_METHODS = {
    "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "permute", "transpose",
    "swapaxes", "swapdims", "movedim", "moveaxis", "t", "squeeze", "unsqueeze", "expand",
    "expand_as", "narrow", "select", "chunk", "split", "tensor_split", "unbind", "diagonal",
    "as_strided", "detach", "contiguous", "to", "float", "double", "half", "bfloat16", "type",
    "type_as", "cpu", "cuda", "real", "imag", "unfold",
}
_ALIAS_FUNCS = {
    torch.flatten, torch.reshape, torch.transpose, torch.swapaxes, torch.swapdims, torch.permute,
    torch.squeeze, torch.unsqueeze, torch.movedim, torch.moveaxis, torch.t, torch.narrow,
    torch.select, torch.chunk, torch.split, torch.tensor_split, torch.unbind, torch.diagonal,
    torch.as_strided, torch.detach, torch.real, torch.imag, operator.getitem, F.dropout,
    F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
}
_ALIAS_ATTRIBUTES = {"T", "mT", "H", "mH", "data", "real", "imag"}
_ALIAS_MODULES = (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
                  nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _first(node: fx.Node) -> Any:
    if node.args:
        return node.args[0]
    return node.kwargs.get("input", node.kwargs.get("self"))


def _inplace_flag(node: fx.Node) -> bool:
    """``F.relu(x, inplace=True)`` / ``F.relu(x, True)``: the call's ``inplace`` argument."""
    if node.kwargs.get("inplace") is True:
        return True
    try:
        bound = inspect.signature(node.target).bind(*node.args, **node.kwargs)
    except (TypeError, ValueError):  # builtins without a signature, or not bindable
        return False
    return bound.arguments.get("inplace") is True


def is_inplace(node: fx.Node, gm: fx.GraphModule) -> bool:
    """Whether ``node`` overwrites its first argument."""
    if node.op == "call_module":
        return getattr(gm.get_submodule(node.target), "inplace", False) is True
    if node.op == "call_method":
        name = node.target
        return name.endswith("_") and not name.startswith("_") and name not in _NOT_MUTATING
    if node.op == "call_function":
        if node.target in _INPLACE_OPERATORS:
            return True
        name = getattr(node.target, "__name__", "")
        if name.endswith("_") and not name.startswith("_"):  # torch.relu_, F.elu_, ...
            return True
        return _inplace_flag(node)
    return False


def plain_target(node: fx.Node) -> Any:
    """The out-of-place twin of an in-place call's target (``torch.relu_`` -> ``torch.relu``,
    ``"add_"`` -> ``"add"``), so that it is classified like the twin; else the target itself."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if not isinstance(name, str) or not name.endswith("_") or name.startswith("_"):
        return node.target
    if node.op == "call_method":
        return name[:-1] if name not in _NOT_MUTATING else name
    if node.op == "call_function":
        for space in (torch, F, torch.Tensor):
            if getattr(space, name, None) is node.target and hasattr(space, name[:-1]):
                return getattr(space, name[:-1])
    return node.target


def _may_alias(node: fx.Node, gm: fx.GraphModule) -> bool:
    """Whether ``node``'s result may share memory with its first argument."""
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), _ALIAS_MODULES) or is_inplace(node, gm)
    if node.op == "call_method":
        return node.target in _ALIAS_METHODS or is_inplace(node, gm)
    if node.op == "call_function":
        if node.target is builtins.getattr:
            return len(node.args) > 1 and node.args[1] in _ALIAS_ATTRIBUTES
        return node.target in _ALIAS_FUNCS or is_inplace(node, gm)
    return False


def _aliases(a: fx.Node, gm: fx.GraphModule, done: dict[fx.Node, fx.Node]) -> set[fx.Node]:
    """Every node that may share memory with ``a`` (``a`` included). Nodes already run out of
    place (``done``) share none with their input."""
    def linked(node: fx.Node) -> list[fx.Node]:
        out = []
        src = _first(node)
        if isinstance(src, fx.Node) and node not in done and _may_alias(node, gm):
            out.append(src)
        out += [u for u in node.users if u not in done and _first(u) is node and _may_alias(u, gm)]
        return out

    seen, todo = {a}, [a]
    while todo:
        for other in linked(todo.pop()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def functionalize(gm: fx.GraphModule, describe: Callable[[fx.Node], str]) -> dict[fx.Node, fx.Node]:
    """Rewrite ``gm``'s graph so its in-place nodes can run out of place; returns
    ``{in-place node: the node it overwrites}``. Only nodes that depend on the model's (first)
    input are touched; refuses what cannot be rewritten (see the module's docstring)."""
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    carrying: set[fx.Node] = set()
    done: dict[fx.Node, fx.Node] = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if not carrying:
                carrying.add(node)
            continue
        if not any(a in carrying for a in node.all_input_nodes):
            continue
        carrying.add(node)
        a = _first(node)
        if not isinstance(a, fx.Node) or not is_inplace(node, gm):
            continue
        # After the operation the overwritten tensor holds the node's result.
        for user in [u for u in a.users if order[u] > order[node]]:
            user.replace_input_with(a, node)
        done[node] = a
        for other in _aliases(a, gm, done):
            if other.op == "get_attr":
                raise UnsupportedLayerError(
                    f"{describe(node)} overwrites a parameter or buffer of the model in place "
                    f"({other.target!r}); the modified backward passes of LRP, DeepLIFT and "
                    "guided backprop do not run models that change their own state. Write the "
                    "operation out of place.")
            late = [u for u in other.users if order[u] > order[node]]
            if other is not a and late:
                raise UnsupportedLayerError(
                    f"{describe(node)} overwrites its input in place, and {describe(other)}, "
                    f"which shares memory with that input, is read afterwards (by "
                    f"{describe(late[0])}). LRP, DeepLIFT and guided backprop run in-place "
                    "operations out of place so that their rules see the input's true values, "
                    "and cannot follow the overwrite through shared memory: make the operation "
                    "out of place (inplace=False, x = x.relu() instead of x.relu_()).")
    if done:
        gm.graph.lint()
        gm.recompile()
    return done


def out_of_place(fn: Callable[..., Any], node: fx.Node) -> Callable[..., Any]:
    """``fn`` (the in-place operation of ``node``) applied to a copy of its first argument, so
    that the argument keeps its value; returns the result (for ``x[i] = v``, the copy)."""
    setitem = node.op == "call_function" and node.target is operator.setitem

    def call(*args: Any, **kwargs: Any) -> Any:
        if args:
            first = args[0].clone() if isinstance(args[0], torch.Tensor) else args[0]
            args = (first, *args[1:])
        else:
            key = "input" if "input" in kwargs else "self"
            first = kwargs[key].clone() if isinstance(kwargs.get(key), torch.Tensor) else kwargs.get(key)
            kwargs = {**kwargs, key: first}
        out = fn(*args, **kwargs)
        return first if setitem else out
    return call
