"""The one hook contract: ``with hooks(model, {layer: fn}) as run:``.

Every package that reads or changes what a layer computes (layer attributions, activations,
statistics, attention, interventions, pruning scores, randomisation order, structure) goes
through :func:`hooks`, so every one of them addresses layers the same way and handles reused
modules the same way:

- a **layer key** is a dotted name (``"features.2"``), the module itself, or a **call site**
  ``"layer1.0.relu@1"``: the second call, in one forward pass, of a module that runs several
  times (torchvision's ResNets call one ``nn.ReLU`` two or three times per block);
- ``fn(site, output)`` runs after the module; it observes (returns ``None``) or replaces the
  output (returns the new one). With ``pre=True``, ``fn(site, args)`` runs before the module and
  may return new positional arguments; with ``with_kwargs=True`` as well, ``fn(site, args,
  kwargs)`` may return ``(args, kwargs)``;
- ``site`` is a :class:`Site`: the key's name, which call of the module this is (0-based, counted
  since the last :meth:`HookRun.reset`) and the module;
- a plain name on a reused module sees every call (``site.call`` tells them apart); a call-site
  key sees only its call. :meth:`HookRun.check_once` refuses a reused module where one value per
  row is needed and names the call sites to pick instead.

The handles are removed on exit, also when the block raises; the model's own hooks are never
touched. Cost: one Python call per hooked module call.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from .errors import LayerError

__all__ = [
    "Site", "HookRun", "hooks", "find_layer", "layer_key", "layer_name", "first_tensor", "with_first",
    "capture", "replacing",
]


@dataclasses.dataclass(frozen=True)
class Site:
    """One call of a hooked module: the key's ``name``, its ``call`` index in the forward pass
    (0 for the first) and the ``module``."""

    name: str
    call: int
    module: nn.Module


def _root(model: Any) -> nn.Module:
    module = model if isinstance(model, nn.Module) else getattr(model, "module", None)
    if not isinstance(module, nn.Module):
        name = getattr(model, "name", type(model).__name__)
        raise LayerError(f"{name} is not a torch module, so it has no layers to select")
    if isinstance(module, torch.fx.GraphModule) and "eval" in vars(module):  # torch.export's .module()
        raise LayerError(
            "the layers of an exported program are inlined into one graph, so no layer runs as a "
            "module; for layer methods pass torch.export.unflatten(program), or the original module")
    return module


def _split_site(key: str) -> tuple[str, int | None]:
    if "@" not in key:
        return key, None
    name, _, call = key.rpartition("@")
    if not call.isdigit():
        raise LayerError(f"call site {key!r} must read 'layer@k' with k = 0, 1, ... (the k-th call)")
    return name, int(call)


def find_layer(model: Any, layer: str | nn.Module) -> tuple[nn.Module, str, int | None]:
    """``(module, dotted name, call index or None)`` for a layer key inside ``model`` (an
    ``nn.Module`` or a :class:`~pellucid.model.Model`); a :class:`LayerError` listing the layers
    if there is no such layer."""
    root = _root(model)
    named = dict(root.named_modules())
    if isinstance(layer, nn.Module):
        for name, mod in named.items():
            if mod is layer:
                return layer, name, None
        raise LayerError(
            f"the module {type(layer).__name__} given as layer is not part of {type(root).__name__}"
        )
    if isinstance(layer, str):
        name, call = _split_site(layer)
        if name in named and name != "":
            return named[name], name, call
    names = [n for n in named if n]
    shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
    raise LayerError(
        f"unknown layer {layer!r} in {type(root).__name__}; its layers are: {shown} "
        "(a reused module's k-th call is 'name@k')"
    )


def layer_key(model: Any, layer: str | nn.Module) -> str:
    """The key :func:`hooks` files ``layer`` under: the string as given (a name or a call site),
    or a module's dotted name. An unknown layer raises here, before anything is registered."""
    _, name, _ = find_layer(model, layer)
    return layer if isinstance(layer, str) else name


def layer_name(model: Any, layer: nn.Module) -> str:
    """The dotted name of ``layer`` inside ``model``."""
    return find_layer(model, layer)[1]


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


def with_first(output: Any, value: torch.Tensor) -> Any:
    """``output`` with its first tensor replaced by ``value`` (the tensor itself if not a tuple)."""
    if isinstance(output, torch.Tensor):
        return value
    return type(output)((value, *output[1:]))


class HookRun:
    """What :func:`hooks` yields: per-key call counts since the last :meth:`reset`."""

    def __init__(self, keys: list[tuple[str, nn.Module, int | None]]) -> None:
        self._keys = keys
        self._calls: dict[int, int] = {}

    def reset(self) -> None:
        """Start counting calls afresh (call it before each forward pass)."""
        self._calls.clear()

    def calls(self, name: str) -> int:
        """How often the module behind key ``name`` ran since the last :meth:`reset`."""
        module = next(mod for key, mod, _ in self._keys if key == name)
        return self._calls.get(id(module), 0)

    def check_once(self, name: str) -> None:
        """Refuse a layer that did not run exactly once (a call-site key: that did not run)."""
        key = next((k for k in self._keys if k[0] == name), None)
        if key is None:
            raise KeyError(name)
        ran = self._calls.get(id(key[1]), 0)
        if key[2] is not None:
            if ran <= key[2]:
                raise LayerError(
                    f"call site {name!r} does not exist: the layer ran {ran} time(s) in this "
                    f"forward pass (valid call sites: @0 to @{max(ran - 1, 0)})"
                )
            return
        if ran != 1:
            sites = ", ".join(f"'{name}@{k}'" for k in range(min(ran, 4))) + (", ..." if ran > 4 else "")
            hint = (f"; it is a reused module, so pick one call site: {sites}" if ran > 1 else
                    "; it did not run on these inputs")
            raise LayerError(
                f"layer {name!r} ran {ran} time(s) in one forward pass, and one value per row "
                f"needs exactly one{hint}"
            )


@contextlib.contextmanager
def hooks(
    model: Any,
    spec: Mapping[str | nn.Module, Callable[..., Any]],
    *,
    pre: bool = False,
    with_kwargs: bool = False,
) -> Iterator[HookRun]:
    """Run ``fn`` at each layer of ``spec`` during every forward pass inside the block.

    ``model`` is an ``nn.Module`` or a :class:`~pellucid.model.Model`; ``spec`` maps layer keys
    (names, modules or ``name@k`` call sites) to functions, called as described in the module
    docstring. Keys are resolved before anything is registered, so an unknown layer raises a
    :class:`LayerError` listing the model's layers and leaves the model untouched.
    """
    resolved = []
    for key, fn in spec.items():
        module, _, call = find_layer(model, key)
        resolved.append((layer_key(model, key), module, call, fn))
    run = HookRun([(label, module, call) for label, module, call, _ in resolved])
    by_module: dict[int, list] = {}
    for label, module, call, fn in resolved:
        by_module.setdefault(id(module), [module, []])[1].append((label, call, fn))

    def make(module: nn.Module, entries: list) -> Callable[..., Any]:
        def dispatch(result: Any, call: int, *rest: Any) -> Any:
            for label, site_call, fn in entries:
                if site_call is not None and site_call != call:
                    continue
                new = fn(Site(label, call, module), *rest)
                if new is not None:
                    result = new
                    if pre:
                        rest = new if with_kwargs else (new,) + rest[1:]
                    else:
                        rest = rest[:-1] + (new,)
            return result

        if pre:
            def pre_hook(_mod: nn.Module, args: Any, kwargs: Any = None) -> Any:
                call = run._calls.get(id(module), 0)
                run._calls[id(module)] = call + 1
                rest = (args, kwargs) if with_kwargs else (args,)
                return dispatch(None, call, *rest)
            return pre_hook

        def post_hook(_mod: nn.Module, args: Any, *more: Any) -> Any:
            call = run._calls.get(id(module), 0)
            run._calls[id(module)] = call + 1
            rest = (args, *more)  # (args, output) or (args, kwargs, output)
            return dispatch(None, call, *rest[1 if not with_kwargs else 0:])
        return post_hook

    handles = []
    try:
        for module, entries in by_module.values():
            fn = make(module, entries)
            if pre:
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=with_kwargs))
            else:
                handles.append(module.register_forward_hook(fn, with_kwargs=with_kwargs))
        yield run
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def capture(model: Any, layers: list[str | nn.Module]) -> Iterator[tuple[HookRun, dict[str, list]]]:
    """Record each layer's output (first tensor) per call: yields ``(run, {name: [tensor, ...]})``.

    A call-site key records only its call; a plain name on a reused module records every call
    (``run.check_once(name)`` refuses that where one value per row is needed). The model goes on
    with a copy of the output, so an in-place operation after the layer (``nn.ReLU(inplace=True)``
    in every torchvision ResNet) cannot overwrite what was recorded; gradients with respect to the
    recorded tensor still flow, since the copy is computed from it. Cost: one copy per call.
    """
    seen: dict[str, list] = {}

    def keep(site: Site, output: Any) -> Any:
        a = first_tensor(output, site.name)
        seen[site.name].append(a)
        return with_first(output, a.clone())

    spec = {}
    for layer in layers:
        seen[layer_key(model, layer)] = []
        spec[layer] = keep
    with hooks(model, spec) as run:
        yield run, seen


@contextlib.contextmanager
def replacing(
    model: Any, layer: str | nn.Module, make: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[tuple[HookRun, list]]:
    """Replace the layer's output ``a`` (first tensor) by ``make(a)`` in every forward pass inside
    the block; yields ``(run, originals)`` with the original outputs, one per call.

    ``make`` must keep the shape: a layer attribution that changed it would be meaningless. The
    model gets a copy of ``make(a)``, so an in-place operation after the layer neither modifies
    the caller's tensor nor fails on a leaf that requires gradients (the copy passes them on).
    """
    calls: list[torch.Tensor] = []

    def swap(site: Site, output: Any) -> Any:
        a = first_tensor(output, site.name)
        calls.append(a)
        new = make(a)
        if new.shape != a.shape:
            raise LayerError(
                f"layer {site.name!r} gives outputs shaped {tuple(a.shape)} here but "
                f"{tuple(new.shape)} elsewhere; layer attributions need the same shape per row"
            )
        return with_first(output, new.clone())

    with hooks(model, {layer: swap}) as run:
        yield run, calls
