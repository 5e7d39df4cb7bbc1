"""Attention weights of every layer and head, from Hugging Face models and ``nn.MultiheadAttention``.

``attention(model, inputs)`` returns one tensor ``(n, layers, heads, tokens, tokens)``: entry
``[i, l, h, q, k]`` is how much query token ``q`` attends to key token ``k`` in head ``h`` of
layer ``l`` for row ``i`` (each row over ``k`` sums to 1, over the tokens a padding mask lets
through). What bertviz shows, as numbers.

Where the weights come from:

- a Hugging Face ``PreTrainedModel`` (the model itself or any submodule, e.g. the encoder of a
  classifier head): it is called with ``output_attentions=True`` (a pre-hook sets it) and read
  from ``.attentions``. Transformers 5 computes attention with SDPA by default, which gives no
  weights, so the model is switched to ``attn_implementation="eager"`` for the call and switched
  back after.
- ``torch.nn.MultiheadAttention`` modules (in the order they run): a pre-hook asks for
  ``need_weights=True, average_attn_weights=False``; torch's fused fast path, which skips the
  module's Python code, is turned off for the call (``torch.backends.mha``).

Cost: one forward pass per row; memory ``n · layers · heads · tokens²`` numbers.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from .._hooks import Site, hooks
from ..adapters import wrap
from ..errors import InputError, ModelError, PellucidError
from ..model import Model

__all__ = ["attention", "attention_modules"]


def _is_hf(module: nn.Module) -> bool:
    config = getattr(module, "config", None)
    return config is not None and hasattr(config, "output_attentions") and any(
        c.__name__ == "PreTrainedModel" for c in type(module).__mro__)


def attention_modules(module: nn.Module) -> tuple[list[nn.Module], list[nn.MultiheadAttention]]:
    """The outermost Hugging Face models inside ``module`` and the MultiheadAttention modules
    outside them."""
    hf: list[nn.Module] = []
    mha: list[nn.MultiheadAttention] = []
    inside: set[int] = set()
    for mod in module.modules():  # parents come before their children
        if id(mod) in inside:
            continue
        if _is_hf(mod):
            hf.append(mod)
            inside.update(id(sub) for sub in mod.modules())
        elif isinstance(mod, nn.MultiheadAttention):
            mha.append(mod)
    return hf, mha


@contextlib.contextmanager
def _eager(models: list[nn.Module]) -> Iterator[None]:
    """Eager attention (which returns weights) inside; the previous implementation restored."""
    saved = []
    try:
        for mod in models:
            old = getattr(mod.config, "_attn_implementation", None)
            saved.append((mod, old))
            if old != "eager":
                if hasattr(mod, "set_attn_implementation"):
                    mod.set_attn_implementation("eager")
                else:
                    mod.config._attn_implementation = "eager"
        yield
    finally:
        for mod, old in reversed(saved):
            if getattr(mod.config, "_attn_implementation", None) != old and old is not None:
                if hasattr(mod, "set_attn_implementation"):
                    mod.set_attn_implementation(old)
                else:
                    mod.config._attn_implementation = old


@contextlib.contextmanager
def _no_fastpath() -> Iterator[None]:
    backend = getattr(torch.backends, "mha", None)
    if backend is None or not hasattr(backend, "set_fastpath_enabled"):
        yield
        return
    old = backend.get_fastpath_enabled()
    backend.set_fastpath_enabled(False)
    try:
        yield
    finally:
        backend.set_fastpath_enabled(old)


def _rows(inputs: Any, m: Model) -> tuple[int, Any]:
    """Number of rows and the inputs (a tensor, or a mapping of tensors sharing the first axis)."""
    if isinstance(inputs, Mapping):
        tensors = {k: (v if isinstance(v, torch.Tensor) else torch.as_tensor(v)).to(m.device)
                   for k, v in inputs.items() if v is not None}
        sizes = {len(v) for v in tensors.values() if v.dim() > 0}
        if len(sizes) != 1:
            raise InputError("the inputs' tensors must share their first (batch) axis; got sizes "
                             f"{sorted(sizes)}")
        return sizes.pop(), tensors
    x = m.prepare(inputs)
    return len(x), x


def attention(
    model: Any, inputs: Any, *, batch_size: int | None = None, progress: bool | None = None,
) -> torch.Tensor:
    """Attention weights ``(n, layers, heads, tokens, tokens)`` of every layer and head.

    ``inputs``: what the model takes — a tensor of token ids (or embeddings / patches), or a
    mapping such as a tokenizer's output (``tokenizer(texts, padding=True,
    return_tensors="pt")``), whose tensors are split into chunks of ``batch_size`` rows and passed
    as keyword arguments. Raises :class:`~pellucid.errors.ModelError` if the model has no
    attention to read. The model is left as found (attention implementation included).

    Example:
        >>> import torch, pellucid
        >>> layer = torch.nn.TransformerEncoderLayer(8, 2, batch_first=True)
        >>> pellucid.features.attention(layer, torch.randn(3, 5, 8)).shape
        torch.Size([3, 1, 2, 5, 5])
    """
    m = wrap(model, batch_size=batch_size)
    if m.module is None:
        raise ModelError(f"{m.name} is not a torch module, so it has no attention layers to read")
    hf, mha = attention_modules(m.module)
    if not hf and not mha:
        raise ModelError(
            f"{m.name} has no attention to read: no Hugging Face transformer and no "
            "torch.nn.MultiheadAttention module inside it. Attention maps exist only for "
            "attention-based models.")
    n, x = _rows(inputs, m)
    row_shape = x.shape[1:] if isinstance(x, torch.Tensor) else next(iter(x.values())).shape[1:]
    found: list[torch.Tensor] = []

    def ask_hf(_site: Site, args: Any, kwargs: dict) -> tuple:
        return args, {**kwargs, "output_attentions": True}

    def read_hf(site: Site, _args: Any, _kwargs: dict, output: Any) -> None:
        att = getattr(output, "attentions", None)
        if att is None and isinstance(output, tuple):
            att = next((o for o in output[1:] if isinstance(o, tuple) and o and
                        isinstance(o[0], torch.Tensor) and o[0].dim() == 4), None)
        if att is None:
            raise ModelError(
                f"{type(site.module).__name__} returned no attentions with output_attentions=True")
        found.extend(att)

    def ask_mha(_site: Site, args: Any, kwargs: dict) -> tuple:
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def read_mha(_site: Site, _args: Any, _kwargs: dict, output: Any) -> None:
        found.append(output[1])

    # Every call of a hooked module is read, in the order they run: a module that runs twice per
    # forward pass (weights shared across layers) gives two layers of attention.
    asks = {**{mod: ask_hf for mod in hf}, **{mod: ask_mha for mod in mha}}
    reads = {**{mod: read_hf for mod in hf}, **{mod: read_mha for mod in mha}}
    parts = []
    with m.explaining(), _eager(hf), _no_fastpath(), torch.no_grad(), \
            hooks(m, asks, pre=True, with_kwargs=True), hooks(m, reads, with_kwargs=True):
        for rows, _ in m.chunks(n, row_shape, batch_size=batch_size, progress=progress, desc="attention"):
            found.clear()
            try:
                if isinstance(x, torch.Tensor):
                    m.fn(x[rows])  # not m.forward: a transformer's output need not be (n, classes)
                else:
                    m.module(**{k: (v[rows] if v.dim() > 0 else v) for k, v in x.items()})
            except PellucidError:
                raise
            except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as err:
                raise InputError(
                    f"the model failed on the inputs ({err}); give what the model takes: a "
                    "batch of token ids (or embeddings), or a tokenizer's output") from err
            if not found or any(a is None for a in found):
                raise ModelError(f"{m.name} ran without computing attention weights")
            if isinstance(x, torch.Tensor) and not found[0].dim() == 4:
                raise ModelError("attention weights are not shaped (n, heads, tokens, tokens)")
            parts.append(torch.stack([a.detach() for a in found], dim=1))
    return torch.cat(parts)
