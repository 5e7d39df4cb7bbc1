"""The modified backward pass shared by LRP, DeepLIFT and guided backprop.

A method supplies *handlers*: for some nodes of the traced graph (see :mod:`.trace`), a function
that computes the node's output with the node's true forward value but a modified gradient.
:func:`run` evaluates the graph with those handlers (a ``torch.fx.Interpreter``; the model's own
modules and hooks are not touched), takes one ordinary backward pass from the explained output,
and returns the input gradient plus any relevance that input rules wrote into their sinks.
Cost: one forward and one backward per chunk of rows, as for a plain gradient.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import fx

from ...errors import InputError, UnsupportedLayerError
from ...model import Model, gather, outputs_2d, select_target
from .trace import Traced, original

Handler = Callable[..., Any]


class Sinks:
    """Leaves of zeros whose gradients are the relevance of the inputs of input rules."""

    def __init__(self) -> None:
        self.items: list[tuple[torch.Tensor, torch.Tensor]] = []

    def new(self, a: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        sink = torch.zeros(a.shape, dtype=dtype, device=a.device, requires_grad=True)
        self.items.append((sink, a))
        return sink


class _Interpreter(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, handlers: dict[fx.Node, Handler]) -> None:
        super().__init__(gm, garbage_collect_values=True)
        self.handlers = handlers

    def run_node(self, n: fx.Node) -> Any:
        handler = self.handlers.get(n)
        if handler is None:
            return super().run_node(n)
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            return handler(*args, **kwargs)


def refuse(traced: Traced, nodes: Iterable[fx.Node], method: str, hint: str) -> None:
    """Raise :class:`UnsupportedLayerError` naming every node in ``nodes`` (if any)."""
    nodes = list(nodes)
    if not nodes:
        return
    shown = "; ".join(traced.describe(n) for n in nodes[:8]) + ("; ..." if len(nodes) > 8 else "")
    raise UnsupportedLayerError(f"{method} has no rule for {shown}. {hint}")


def run(
    m: Model, traced: Traced, handlers: dict[fx.Node, Handler], sinks: Sinks, x: torch.Tensor,
    target: Any, *, batch_size: int | None, progress: bool | None, desc: str,
    reference: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Evaluate and differentiate the graph with ``handlers`` over all rows, in chunks.

    Returns ``grad`` (d modified / d inputs), ``sink`` (relevance written by input rules, shaped
    like the inputs, or None), ``outputs`` and ``target`` (per row) and, with a ``reference``
    (DeepLIFT's baseline rows, run in the same pass as the inputs), ``reference_outputs``.
    """
    parts: dict[str, list[torch.Tensor]] = {"grad": [], "sink": [], "outputs": [], "target": [],
                                             "reference_outputs": []}
    # in-place operations without a rule still run out of place (see trace.original)
    handlers = {**{node: original(traced, node) for node in traced.inplace}, **handlers}
    interp = _Interpreter(traced.gm, handlers)
    float_input = x.is_floating_point()
    any_sink = False
    for s, t in m.chunks(len(x), x.shape[1:], target=target, batch_size=batch_size, progress=progress, desc=desc):
        xc = x[s]
        n = len(xc)
        leaf = (torch.cat([xc, reference[s]]) if reference is not None else xc).detach()
        if float_input:
            leaf.requires_grad_(True)
        sinks.items.clear()
        with torch.enable_grad():
            try:
                raw = interp.run(leaf)
            except (RuntimeError, ValueError, IndexError) as err:
                if isinstance(err, UnsupportedLayerError):
                    raise
                raise InputError(
                    f"the model failed on inputs with rows shaped {tuple(xc.shape[1:])}: {err}. "
                    "Check that the inputs have the rank and shape the model expects, with the "
                    "batch first (a single example needs a leading batch dimension: x[None])"
                ) from err
            out = outputs_2d(raw, len(leaf))
            if not traced.checked:
                _check_faithful(m, traced, leaf, out)
            t = select_target(out[:n], t)
            selected = gather(out[:n], t)
            wrt = ([leaf] if float_input else []) + [sink for sink, _ in sinks.items]
            grads = torch.autograd.grad(selected.sum(), wrt, allow_unused=True) if wrt else []
        g_x = grads[0] if float_input else None
        g_x = torch.zeros_like(leaf) if float_input and g_x is None else g_x
        parts["grad"].append(g_x[:n].detach() if g_x is not None
                             else torch.zeros(xc.shape, dtype=m.dtype, device=xc.device))
        sink_rel = None
        for (_sink, a), g in zip(sinks.items, grads[int(float_input):]):
            if g is None:
                continue
            r = _transport(g, a, leaf)
            sink_rel = r if sink_rel is None else sink_rel + r
        if sink_rel is not None:
            any_sink = True
            parts["sink"].append(sink_rel[:n].detach())
        else:
            parts["sink"].append(torch.zeros(xc.shape, dtype=g_x.dtype if g_x is not None else
                                              torch.get_default_dtype(), device=xc.device))
        parts["outputs"].append(selected.detach())
        parts["target"].append(t)
        if reference is not None:
            parts["reference_outputs"].append(gather(out[n:], t).detach())
        sinks.items.clear()
    result = {k: torch.cat(v) for k, v in parts.items() if v}
    if not any_sink:
        result["sink"] = None
    return result


def _check_faithful(m: Model, traced: Traced, leaf: torch.Tensor, out: torch.Tensor) -> None:
    """Once per traced model: the graph (whose handlers keep every forward value) gives the
    model's own outputs. ``torch.fx`` records ``a += b`` as ``a + b``, so another name or a view
    of ``a`` read later misses the change, and Python side effects are not traced at all: such a
    graph explains another function, which must not pass silently."""
    with torch.no_grad():
        expected = outputs_2d(m.module(leaf.detach().clone()), len(leaf)).to(out.dtype)
    got = out.detach()
    tol = 1e-4 * float(expected.abs().max()) + 1e-6 if expected.numel() else 0.0
    if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-3, atol=tol,
                                                         equal_nan=True):
        gap = float((got - expected).abs().max()) if got.shape == expected.shape else float("nan")
        raise UnsupportedLayerError(
            f"{m.name}'s forward pass traced with torch.fx computes other outputs than the model "
            f"(largest difference {gap:.3g}). torch.fx records an in-place update `a += b` as "
            "`a = a + b`, so another name for `a` or a view of it read afterwards misses the "
            "change, and Python side effects are not traced. Write the update out of place "
            "(`a = a + b`) where the old value is read again, or use a method that needs no "
            "tracing (integrated_gradients, saliency).")
    traced.checked = True


def _transport(relevance: torch.Tensor, a: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    """Relevance of the tensor ``a`` (the model input up to shape-only operations) as relevance
    of the input itself: a vector-Jacobian product through those operations, which moves each
    element back to where it came from."""
    if a is leaf:
        return relevance
    if leaf.requires_grad and a.requires_grad:
        (r,) = torch.autograd.grad(a, leaf, relevance, retain_graph=True)
        return r
    if a.numel() == leaf.numel():  # integer token ids reshaped
        return relevance.reshape(leaf.shape)
    raise UnsupportedLayerError(
        "an input rule read a rearranged copy of integer inputs that cannot be mapped back to "
        "them; feed the ids to the embedding directly")
