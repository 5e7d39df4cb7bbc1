"""Leave the user's model exactly as it was found.

:func:`preserved` snapshots everything an explanation method might disturb on an ``nn.Module`` tree
and puts it back on exit, also when the method raised: each module's ``training`` flag, its
``_parameters``/``_buffers``/``_modules`` entries (so a canonizer that swaps a layer or a parameter
is undone), every parameter's ``requires_grad`` and ``.grad``, and every hook dictionary (module
hooks and torch's global module hooks), cleared and refilled in place so that outstanding
``RemovableHandle`` objects stay valid; attributes added to a module meanwhile are removed and
plain ones (bools, numbers, strings, None) set back. Values are not copied: methods never write parameters in
place, and copying would double the memory of a large model.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.modules import module as _module_mod

_GLOBAL_HOOK_NAMES = [
    name for name in dir(_module_mod) if name.startswith("_global_") and name.endswith("hooks")
]


# Every nn.Module carries the same hook dictionaries, created in nn.Module.__init__.
_HOOK_NAMES = tuple(
    name for name, value in vars(nn.Module()).items()
    if name.endswith("_hooks") and isinstance(value, dict)
)


def _hook_dicts(mod: nn.Module) -> dict[str, dict]:
    d = mod.__dict__
    return {name: d[name] for name in _HOOK_NAMES if name in d}


_PLAIN = (bool, int, float, str, type(None))  # attribute values restored by value
_MISSING = object()


@contextlib.contextmanager
def preserved(module: nn.Module | None) -> Iterator[None]:
    """Context manager restoring ``module`` (and all its submodules) on exit."""
    if module is None:
        yield
        return
    modules = list(module.modules())
    saved = []
    for mod in modules:
        saved.append(
            (
                mod,
                mod.training,
                dict(mod._parameters),
                dict(mod._buffers),
                dict(mod._modules),
                {name: dict(d) for name, d in _hook_dicts(mod).items()},
                getattr(mod, "_is_full_backward_hook", None),
                set(mod.__dict__),
                {k: v for k, v in mod.__dict__.items() if isinstance(v, _PLAIN)},
            )
        )
    params = {id(p): (p, p.requires_grad, p.grad) for p in module.parameters()}
    global_hooks = {
        name: dict(getattr(_module_mod, name))
        for name in _GLOBAL_HOOK_NAMES
        if isinstance(getattr(_module_mod, name), dict)
    }
    try:
        yield
    finally:
        for mod, training, p, b, m, hooks, full_bw, keys, plain in saved:
            if mod.training != training:
                mod.training = training
            for store, old in ((mod._parameters, p), (mod._buffers, b), (mod._modules, m)):
                if list(store) != list(old) or any(store[k] is not v for k, v in old.items()):
                    store.clear()
                    store.update(old)
            current = _hook_dicts(mod)
            for name, old in hooks.items():
                d = current.get(name)
                if d is not None and (d.keys() != old.keys()):
                    d.clear()
                    d.update(old)
            if getattr(mod, "_is_full_backward_hook", None) != full_bw:
                mod._is_full_backward_hook = full_bw
            # Flags a library sets lazily on first use (transformers marks its output-capturing
            # hooks as installed) must go with the hooks removed above, or the model breaks.
            for key in set(mod.__dict__) - keys:
                del mod.__dict__[key]
            for key, value in plain.items():
                if mod.__dict__.get(key, _MISSING) is not value:
                    mod.__dict__[key] = value
        for p, requires_grad, grad in params.values():
            if p.requires_grad != requires_grad:
                p.requires_grad_(requires_grad)
            if p.grad is not grad:
                p.grad = grad
        for name, old in global_hooks.items():
            d = getattr(_module_mod, name)
            if d.keys() != old.keys():
                d.clear()
                d.update(old)


@contextlib.contextmanager
def explaining(module: nn.Module | None, *, eval_mode: bool = True) -> Iterator[None]:
    """Preserve ``module`` and, inside, put it in eval mode with parameters frozen.

    Frozen parameters (``requires_grad=False``) mean a backward pass computes input gradients
    only, which is all an attribution needs and about a third cheaper than also computing weight
    gradients; it also guarantees no ``.grad`` of the user's is touched.
    """
    with preserved(module):
        if module is not None:
            if eval_mode:
                module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
        yield

