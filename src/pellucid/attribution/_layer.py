"""Hooks on a layer's output, shared by the layer methods (layer IG, conductance, activations).

Two mechanics, each a context manager that removes its hooks on exit (also on error):

- :func:`capture` records the output of some modules during a forward pass;
- :func:`replacing` swaps one module's output for a tensor the caller chose (the interpolated
  path of layer Integrated Gradients, or a fresh leaf whose gradient is wanted).

A layer whose output is a tuple (a transformer block) is read at its first tensor; replacing
keeps the rest of the tuple.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from ..errors import LayerError
from ..model import layer_name  # noqa: F401  (re-exported for the layer methods)


def first_tensor(output: Any, name: str) -> torch.Tensor:
    """The output itself if a tensor, else the first tensor of a tuple/list (a clear error if none)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise LayerError(
        f"layer {name!r} returns {type(output).__name__}, not a tensor; pick a layer whose output "
        "is a tensor (or a tuple whose first item is one)"
    )


def _with_first(output: Any, value: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return value
    return type(output)((value, *output[1:]))


@contextlib.contextmanager
def capture(modules: Sequence[nn.Module], names: Sequence[str]) -> Iterator[dict[str, list]]:
    """Record each module's output (first tensor) per forward call: ``{name: [tensor, ...]}``."""
    seen: dict[str, list] = {name: [] for name in names}
    handles = []

    def keeper(name: str) -> Callable:
        def keep(_module: nn.Module, _inputs: Any, output: Any) -> None:
            seen[name].append(first_tensor(output, name))
        return keep

    try:
        for module, name in zip(modules, names):
            handles.append(module.register_forward_hook(keeper(name)))
        yield seen
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def replacing(module: nn.Module, name: str, make: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[list]:
    """Replace ``module``'s output ``a`` by ``make(a)`` in every forward pass inside the block.

    Yields the list of the original outputs (one per call), so a caller can check that the layer
    ran exactly once.
    """
    calls: list[torch.Tensor] = []

    def swap(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        a = first_tensor(output, name)
        calls.append(a)
        new = make(a)
        if new.shape != a.shape:
            raise LayerError(
                f"layer {name!r} gives outputs shaped {tuple(a.shape)} here but "
                f"{tuple(new.shape)} elsewhere; layer attributions need the same shape per row"
            )
        return _with_first(output, new)

    handle = module.register_forward_hook(swap)
    try:
        yield calls
    finally:
        handle.remove()


def check_once(calls: list, name: str) -> None:
    """The layer must run exactly once per forward pass for its output to be attributed."""
    if len(calls) != 1:
        raise LayerError(
            f"layer {name!r} ran {len(calls)} times in one forward pass; layer attributions need "
            "a layer that runs exactly once (pick a module that is not reused)"
        )


def layer_outputs(
    m: Any, x: torch.Tensor, module: nn.Module, name: str, *, batch_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(layer output, model output)`` for all rows of ``x``, without gradients, in chunks."""
    acts, outs = [], []
    with torch.no_grad():
        for s in m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=False, desc=name):
            with capture([module], [name]) as seen:
                outs.append(m.forward(x[s]))
            check_once(seen[name], name)
            acts.append(seen[name][0])
    return torch.cat(acts), torch.cat(outs)


def outputs_with_layer(
    m: Any, x: torch.Tensor, module: nn.Module, name: str, acts: torch.Tensor, *,
    batch_size: int | None,
) -> torch.Tensor:
    """Model outputs on ``x`` with ``module``'s output replaced row by row by ``acts``."""
    outs = []
    with torch.no_grad():
        for s in m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=False, desc=name):
            with replacing(module, name, lambda _a, s=s: acts[s]) as calls:
                outs.append(m.forward(x[s]))
            check_once(calls, name)
    return torch.cat(outs)


def layer_integrated_gradients(
    m: Any, x: torch.Tensor, base: torch.Tensor, layer: Any, target: Any, *,
    alphas: torch.Tensor, weights: torch.Tensor, batch_size: int | None, progress: bool | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """Layer IG: ``(a(x) − a(x')) ⊙ Σ_k w_k ∂f_t/∂a |_{a(x') + α_k (a(x) − a(x'))}``.

    ``a`` is the layer's output. Each path point runs the model on the row's own inputs with the
    layer's output replaced by the interpolated activation (so everything that does not flow
    through the layer — an attention mask, a residual from before it — stays that of ``x``), as
    Captum's ``LayerIntegratedGradients`` does. Completeness holds with respect to the layer:
    ``Σ values = f_t(x) − f_t(x ; a ← a(x'))``. Returns ``(values, outputs, baseline_outputs,
    target, layer name)``.
    """
    from ..model import gather, select_target

    module = m.layer(layer)
    name = layer_name(m, module)
    n, steps = len(x), len(alphas)
    a_x, out_x = layer_outputs(m, x, module, name, batch_size=batch_size)
    a_b, _ = layer_outputs(m, base, module, name, batch_size=batch_size)
    if a_b.shape != a_x.shape:
        raise LayerError(f"layer {name!r} gives differently shaped outputs at the inputs and the baseline")
    t = select_target(out_x, target)
    baseline_outputs = gather(outputs_with_layer(m, x, module, name, a_b, batch_size=batch_size), t)
    diff = a_x - a_b
    total = torch.zeros_like(a_x)
    shape = (-1,) + (1,) * (a_x.dim() - 1)
    for s in m.chunks(n * steps, x.shape[1:], batch_size=batch_size, progress=progress,
                      desc="layer integrated_gradients"):
        flat = torch.arange(s.start, s.stop, device=x.device)
        rows, k = flat // steps, flat % steps
        point = (a_b[rows] + alphas[k].view(shape) * diff[rows]).requires_grad_(True)
        with torch.enable_grad(), replacing(module, name, lambda _a: point) as calls:
            out = m.forward(x[rows])
            check_once(calls, name)
            (grad,) = torch.autograd.grad(gather(out, t[rows]).sum(), point)
        total.index_add_(0, rows, grad * weights[k].view(shape))
    return diff * total, gather(out_x, t), baseline_outputs, t, name
