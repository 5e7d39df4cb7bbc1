"""``inspect.structure``: every layer of a model, its output shape and parameters, as a table and a graph.

The model is run once on ``inputs`` (eval mode, no gradients, state restored afterwards).
When ``torch.fx`` can trace it, the rows are the traced graph's nodes in execution order: module
calls *and* functional operations (``F.relu(x)``, ``x + y`` residual additions), with the edges
of the real data flow, so skip connections show in the drawing. Models fx cannot trace (data-
dependent control flow) fall back to forward hooks: one row per called leaf module, in call order,
drawn as a chain (``traced=False`` says so). A module called more than once in the forward pass
gets a row per call, named by its call site ``name@k`` as every ``layer=`` option reads it
(``"act@1"``: the second call of ``act``). Parameters are counted once each (shared parameters
too), so the rows' parameter column sums to ``sum(p.numel() for p in model.parameters())``.
Cost: one forward pass (two when tracing: one for the shapes through fx, none through hooks).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import torch
from torch import fx, nn

from .._deprecation import renamed
from .._hooks import Site, hooks
from .._state import preserved
from .._table import text_table
from ..errors import InputError, ModelError

__all__ = ["structure", "Structure", "Layer"]

_ROOT = "(model)"  # the row of a model whose parameters no submodule holds


@dataclasses.dataclass
class Layer:
    """One row: a module call, a functional operation or a parameter read directly by ``forward``.

    ``inputs`` names the rows whose outputs this one consumes (the graph's edges).
    """

    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    params: int
    trainable: int
    inputs: list[str]
    module: bool


@dataclasses.dataclass
class Structure:
    """The result of :func:`structure`: rows in execution order plus totals."""

    model: str
    input_shape: tuple[int, ...]
    layers: list[Layer]
    total_params: int
    trainable_params: int
    traced: bool

    def table(self) -> list[dict[str, Any]]:
        """The rows as dictionaries (name, kind, output shape, parameters, trainable parameters)."""
        return [
            {"name": r.name, "kind": r.kind, "output_shape": r.output_shape,
             "params": r.params, "trainable": r.trainable}
            for r in self.layers
        ]

    def __str__(self) -> str:
        how = "" if self.traced else " (hooks or TorchScript: module calls only, drawn as a chain)"
        table = text_table(
            self.table(), headers={"name": "layer", "output_shape": "output shape"},
            formats={"params": "{:,}".format, "trainable": "{:,}".format},
            title=f"{self.model} on input {tuple(self.input_shape)}{how}",
        )
        return f"{table}\ntotal parameters {self.total_params:,}, trainable {self.trainable_params:,}"

    def to_svg(self) -> str:
        """The graph as a standalone SVG document (no external binary needed)."""
        from ._graph_svg import draw_graph

        return draw_graph(self.layers)

    def _repr_svg_(self) -> str:  # Jupyter
        return self.to_svg()


@renamed(example_inputs="inputs")
def structure(model: nn.Module, inputs: Any, *, trace: bool = True) -> Structure:
    """Every layer of ``model`` with its kind, output shape and parameter counts.

    ``inputs``: a tensor (or a tuple of tensors) the model accepts, e.g. one batch row (old name
    ``example_inputs``, deprecated). ``trace=False`` skips torch.fx and uses hooks only.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> s = structure(net, torch.zeros(1, 3))
        >>> [r.output_shape for r in s.layers], s.total_params
        ([(1, 4), (1, 4), (1, 2)], 26)
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"structure needs a torch.nn.Module, got {type(model).__name__}")
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        raise InputError("inputs must be a tensor or a tuple of tensors the model accepts")
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    trainable = sum(p.numel() for p in unique.values() if p.requires_grad)
    if isinstance(model, torch.jit.ScriptModule):
        # TorchScript keeps its modules in C++: neither fx nor hooks see inside, so the rows are
        # its submodules in definition order, with the output shape of the whole model only.
        return Structure(type(model).__name__, tuple(args[0].shape), _script_rows(model, args),
                         total, trainable, False)
    with preserved(model):
        try:
            model.eval()
        except NotImplementedError:  # torch.export's module refuses eval(); it was exported as is
            pass
        rows = _traced_rows(model, args) if trace else None
        traced = rows is not None
        if rows is None:
            rows = _hooked_rows(model, args)
    rows += _uncalled_rows(model, rows)
    return Structure(type(model).__name__, tuple(args[0].shape), rows, total, trainable, traced)


def _own_params(module: nn.Module, seen: set[int]) -> tuple[int, int]:
    """Parameters held directly by ``module`` (not by its children), each counted once overall."""
    n = t = 0
    for p in module.parameters(recurse=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        n += p.numel()
        t += p.numel() if p.requires_grad else 0
    return n, t


def _subtree_params(module: nn.Module, seen: set[int]) -> tuple[int, int]:
    n = t = 0
    for sub in module.modules():
        a, b = _own_params(sub, seen)
        n, t = n + a, t + b
    return n, t


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return tuple(value[0].shape)
    return None


def _op_name(target: Any) -> str:
    return getattr(target, "__name__", None) or str(target)


def _traced_rows(model: nn.Module, args: tuple) -> list[Layer] | None:
    try:
        gm = fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - any tracing failure means: use hooks
        return None
    shapes: dict[str, tuple | None] = {}

    class _Shapes(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            result = super().run_node(n)
            shapes[n.name] = _shape(result)
            return result

    try:
        with torch.no_grad():
            _Shapes(gm).run(*args)
    except Exception:  # noqa: BLE001 - traced graph differs from eager behaviour: use hooks
        return None
    modules = dict(model.named_modules())
    called = Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_module")
    calls: Counter[str] = Counter()
    seen: set[int] = set()
    rows: list[Layer] = []
    label: dict[str, str] = {}  # fx node name -> row name (placeholders keep their own)
    for node in gm.graph.nodes:
        producers = [label.get(a.name, a.name) for a in node.all_input_nodes]
        if node.op == "placeholder":
            label[node.name] = node.name
            continue
        if node.op == "output":
            continue
        if node.op == "call_module":
            target = str(node.target)
            name = _site(target, calls[target], called[target])
            calls[target] += 1
            n, t = _subtree_params(modules[target], seen)
            kind, is_module = type(modules[target]).__name__, True
        elif node.op == "get_attr":
            name = str(node.target)
            value = gm.get_parameter(name) if _is_parameter(gm, name) else None
            if value is None or id(value) in seen:
                n = t = 0
            else:
                seen.add(id(value))
                n, t = value.numel(), value.numel() if value.requires_grad else 0
            kind, is_module = "parameter", False
        else:
            name = node.name
            n = t = 0
            kind, is_module = _op_name(node.target), False
        label[node.name] = name
        rows.append(Layer(name, kind, shapes.get(node.name), n, t, producers, is_module))
    return rows


def _is_parameter(gm: fx.GraphModule, name: str) -> bool:
    try:
        gm.get_parameter(name)
        return True
    except AttributeError:
        return False


def _hooked_rows(model: nn.Module, args: tuple) -> list[Layer]:
    calls: list[tuple[Site, Any]] = []
    # Leaf modules and modules holding parameters of their own; keyed by module, so a module
    # registered under two names is hooked once, under its first name.
    watched = [mod for name, mod in model.named_modules()
               if name and (not any(True for _ in mod.children())
                            or any(True for _ in mod.parameters(recurse=False)))]

    def record(site: Site, output: Any) -> None:
        calls.append((site, _shape(output)))

    try:
        with hooks(model, dict.fromkeys(watched, record)), torch.no_grad():
            model(*args)
    except Exception as err:
        raise ModelError(f"{type(model).__name__} failed on inputs of shape "
                         f"{tuple(args[0].shape)}: {err}") from err
    called = Counter(site.name for site, _ in calls)
    seen: set[int] = set()
    rows: list[Layer] = []
    previous = "input"
    if not calls and any(True for _ in model.parameters()):
        calls.append((Site(_ROOT, 0, model), None))
    for site, shape in calls:
        mod = site.module
        n, t = _own_params(mod, seen) if any(True for _ in mod.children()) else _subtree_params(mod, seen)
        name = _site(site.name, site.call, called[site.name])
        rows.append(Layer(name, type(mod).__name__, shape, n, t, [previous], True))
        previous = name
    return rows


def _site(name: str, call: int, calls: int) -> str:
    """The row name of a module's ``call``-th call: its name, or ``name@call`` when it ran more
    than once (the call-site key every ``layer=`` option accepts)."""
    return f"{name}@{call}" if calls > 1 else name


def _module_of(row: Layer) -> str:
    """The module name behind a module row (its call-site suffix dropped; ``""`` for the model)."""
    if row.name == _ROOT:
        return ""
    base, at, call = row.name.rpartition("@")
    return base if at and call.isdigit() else row.name


def _script_rows(model: torch.jit.ScriptModule, args: tuple) -> list[Layer]:
    try:
        with torch.no_grad():
            out_shape = _shape(model(*args))
    except Exception as err:
        raise ModelError(f"the TorchScript model failed on inputs of shape "
                         f"{tuple(args[0].shape)}: {err}") from err
    seen: set[int] = set()
    rows, previous = [], "input"
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    for k, (name, mod) in enumerate(leaves):
        n, t = _own_params(mod, seen)
        kind = getattr(mod, "original_name", type(mod).__name__)
        rows.append(Layer(name, kind, out_shape if k == len(leaves) - 1 else None, n, t, [previous], True))
        previous = name
    return rows


def _uncalled_rows(model: nn.Module, rows: list[Layer]) -> list[Layer]:
    """Modules holding parameters that the forward pass never touched (counted, shape unknown)."""
    counted = {_module_of(r) for r in rows if r.module}
    modules = dict(model.named_modules())
    seen: set[int] = set()
    for r in rows:
        if r.module and _module_of(r) in modules:
            seen.update(id(p) for p in modules[_module_of(r)].parameters())
        elif r.kind == "parameter":
            try:
                seen.add(id(model.get_parameter(r.name)))
            except AttributeError:
                pass
    extra = []
    for name, mod in modules.items():
        if name in counted:
            continue
        n, t = _own_params(mod, seen)
        if n:
            extra.append(Layer(name or _ROOT, type(mod).__name__ + " (not called)", None, n, t, [], True))
    return extra
