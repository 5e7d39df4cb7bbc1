"""Canonizers: rewrite a model, temporarily and exactly, into a form the LRP rules apply to.

**BatchNorm merging.** In eval mode ``BN(z) = (z − μ)·s + β`` with ``s = γ / √(σ² + eps)``, an
affine map. Following a Linear or Conv layer ``z = Wa + b`` it folds into it:
``W' = s·W`` (per output channel), ``b' = (b − μ)·s + β`` — the same function, but now one linear
layer the rules see (a rule applied to BN separately is not the rule of the merged layer).
:func:`lrp` merges on its traced graph without touching the model; :func:`merged_batchnorm`
does the same *in place* on the model (Zennit style) and restores it on exit, also on error.

**Residual additions** need no canonizer in pellucid: ``x + y`` (module or functional) is traced,
and the gradient form of relevance (``R = a ⊙ g``) splits ``R_{x+y}`` into ``x ⊙ g`` and
``y ⊙ g`` — exactly in proportion to the summands (the z-rule on the sum).

Reference: Montavon et al. 2019, "Layer-Wise Relevance Propagation: An Overview"; Zennit's
``SequentialMergeBatchNorm`` (Anders et al. 2021).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import fx, nn

from ..._state import preserved
from .rules import Affine
from .trace import Traced, trace

__all__ = ["merged_batchnorm", "fold_batchnorm", "batchnorm_pairs"]


def fold_batchnorm(weight: torch.Tensor, bias: torch.Tensor | None,
                   bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W', b')`` of the affine layer ``(weight, bias)`` followed by the eval-mode ``bn``."""
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = bn.weight * scale
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        w = weight * scale.reshape((-1,) + (1,) * (weight.dim() - 1)).to(weight.dtype)
        b = shift if bias is None else bias * scale + shift
    return w, b.to(weight.dtype)


def batchnorm_pairs(traced: Traced) -> dict[fx.Node, fx.Node]:
    """BatchNorm node -> the affine node it can be merged into.

    Mergeable: the BN reads the output of a Linear/Conv (module or functional) that nothing else
    reads, and keeps running statistics (so it is affine in eval mode).
    """
    pairs = {}
    for node in traced.nodes("batchnorm"):
        bn = traced.gm.get_submodule(node.target)
        src = node.args[0] if node.args else None
        if (isinstance(src, fx.Node) and traced.kinds.get(src) == "affine" and len(src.users) == 1
                and bn.running_mean is not None and bn.running_var is not None
                and src not in pairs.values()):
            pairs[node] = src
    return pairs


def merged_affine(traced: Traced, pairs: dict[fx.Node, fx.Node]) -> dict[fx.Node, Affine]:
    """Every affine node's :class:`Affine` with the BatchNorm after it folded in."""
    after = {src: bn for bn, src in pairs.items()}
    layers = {}
    for node, build in traced.affine.items():
        layer = build()
        if node in after:
            bn = traced.gm.get_submodule(after[node].target)
            layer.weight, layer.bias = fold_batchnorm(layer.weight, layer.bias, bn)
        layers[node] = layer
    return layers


@contextlib.contextmanager
def merged_batchnorm(model: nn.Module) -> Iterator[list[tuple[str, str]]]:
    """Inside: every BatchNorm module that follows a Linear/Conv module is merged into it (the
    layer's weight and bias replaced, the BN replaced by ``nn.Identity``). On exit — also on an
    exception — the model is exactly restored. Yields the merged ``(layer, batchnorm)`` names.

    The model should be in eval mode (merging uses the running statistics).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).eval()
    >>> with merged_batchnorm(net) as merged:
    ...     merged
    [('0', '1')]
    """
    traced = trace(model)
    pairs = [(bn, src) for bn, src in batchnorm_pairs(traced).items() if src.op == "call_module"]
    with preserved(model):
        done = []
        for bn_node, src in pairs:
            layer = model.get_submodule(src.target)
            bn = model.get_submodule(bn_node.target)
            w, b = fold_batchnorm(layer.weight, layer.bias, bn)
            layer.weight = nn.Parameter(w, requires_grad=layer.weight.requires_grad)
            layer.bias = nn.Parameter(b, requires_grad=layer.weight.requires_grad)
            parent_name, _, attr = bn_node.target.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, nn.Identity())
            done.append((src.target, bn_node.target))
        yield done
