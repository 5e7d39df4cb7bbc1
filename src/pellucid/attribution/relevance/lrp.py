"""Layer-wise relevance propagation: the public function."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ...adapters import gradient_model
from ...errors import UnsupportedLayerError
from ...explanation import Explanation
from ...registry import register
from . import _backward
from .canonizers import batchnorm_pairs, merged_affine
from .composites import Composite, resolve
from .rules import Affine, Rule, _ratio, _through, scale_gradient
from .trace import Traced, original, require_module, trace

__all__ = ["lrp", "rule_map"]


@register("lrp", gradients=True, additive=True)
def lrp(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    composite: Any = "epsilon_plus_flat",
    epsilon: float = 1e-6,
    gamma: float = 0.25,
    low: Any = None,
    high: Any = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Explanation:
    """Layer-wise relevance propagation: the explained output redistributed onto the inputs.

    Relevance starts as ``R = f_t(x)`` at the explained output and crosses each linear layer by
    its rule (``R_i = Σ_j (share of input i in z_j) · R_j``), so that under conservative rules
    (bias-free layers, ε → 0, z⁺, γ) ``Σ values = f_t(x)`` per row (``.delta`` ≈ 0; biases and
    ε absorb the rest). ``composite`` picks the rules: a built-in name (``epsilon``,
    ``epsilon_plus``, ``epsilon_plus_flat`` — the default, ``epsilon_gamma_box``,
    ``epsilon_alpha2_beta1``, ``alpha1_beta0``), a dict ``{layer name or module type: rule}``
    or a :class:`~pellucid.attribution.relevance.composites.Composite`. ``epsilon`` and ``gamma`` set
    the built-ins' ε and γ; ``low``/``high`` bound the inputs for ``epsilon_gamma_box``'s ZBox
    (default: the batch's minimum and maximum).

    The model is traced with ``torch.fx``, so functional calls (``F.relu``, ``x + y`` residuals,
    ``F.conv2d``) get the same rules as modules. BatchNorm after a Linear/Conv is merged into it
    for the computation (the model is not changed); ReLU-like activations and max pooling pass
    relevance by their gradient, other activations (tanh, GELU, ...) pass it unchanged, sums and
    average pooling split it in proportion to their inputs, LayerNorm holds its scale constant
    (Ali et al. 2022) and Embedding sums relevance over the embedding dimension. A layer or
    operation without a rule raises :class:`~pellucid.errors.UnsupportedLayerError` before the
    model runs.

    Cost: one modified forward and one backward pass per chunk of rows: about 1.3x a plain
    gradient with ε-rules, 1.7–1.8x with z⁺/γ convolutions (two convolutions per layer), half
    Zennit's time (bench/README.md). References: Bach et al. 2015, "On Pixel-Wise Explanations for
    Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation"; Montavon et al. 2019,
    "Layer-Wise Relevance Propagation: An Overview"; Zennit (Anders et al. 2021).

    >>> import torch, pellucid
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.ReLU(),
    ...                           torch.nn.Linear(4, 2, bias=False)).double()
    >>> e = pellucid.lrp(net, torch.rand(5, 3, dtype=torch.float64), composite="epsilon", epsilon=0)
    >>> bool(e.delta.abs().max() < 1e-10)
    True
    """
    m = gradient_model(model, "lrp", batch_size)
    require_module(m, "lrp")
    with m.explaining():
        x = m.prepare(inputs)
        m.require_single_input("lrp")
        options: dict[str, Any] = {"epsilon": epsilon, "gamma": gamma}
        if composite == "epsilon_gamma_box":
            options["low"] = float(x.min()) if low is None else low
            options["high"] = float(x.max()) if high is None else high
        comp = resolve(composite, **options)
        traced = trace(m.module)
        sinks = _backward.Sinks()
        handlers, rules = _handlers(traced, comp, sinks, x.dtype if x.is_floating_point() else m.dtype)
        res = _backward.run(m, traced, handlers, sinks, x, target, batch_size=batch_size,
                            progress=progress, desc="lrp")
    values = res["sink"] if res["sink"] is not None else torch.zeros_like(res["grad"])
    if x.is_floating_point():
        values = values + x * res["grad"]
    return Explanation(
        values=values,
        inputs=x,
        target=res["target"],
        outputs=res["outputs"],
        baseline_outputs=torch.zeros_like(res["outputs"]),
        params={"composite": composite if isinstance(composite, str) else repr(comp)},
        meta={"forward_rows": len(x), "backward_rows": len(x),
              "rules": {name: repr(rule) for name, rule in rules.items()}},
    )


def rule_map(model: nn.Module, composite: Any = "epsilon_plus_flat", **options: Any) -> dict[str, Rule]:
    """Which rule each linear layer of ``model`` gets under ``composite`` (name -> rule)."""
    traced = trace(model)
    comp = resolve(composite, **options)
    _, rules = _handlers(traced, comp, _backward.Sinks(), torch.get_default_dtype())
    return rules


def _first_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["input"]


def _handlers(traced: Traced, comp: Composite, sinks: _backward.Sinks,
              dtype: torch.dtype) -> tuple[dict[fx.Node, Any], dict[str, Rule]]:
    pairs = batchnorm_pairs(traced)
    _backward.refuse(
        traced, [n for n in traced.nodes("batchnorm") if n not in pairs], "lrp",
        "BatchNorm is merged into the Linear/Conv layer right before it; this one follows no such "
        "layer (or that layer's output is also used elsewhere). Fold it by hand, or move it "
        "directly after a Linear/Conv layer.")
    _backward.refuse(
        traced, traced.nodes("unknown"), "lrp",
        "LRP covers Linear, Conv1d/2d/3d, pointwise activations, pooling, Upsample, Flatten, "
        "Dropout, BatchNorm (merged), LayerNorm, Embedding and sums; replace the operation, "
        "explain a sub-model that avoids it, or use a gradient or model-agnostic method.")
    layers = merged_affine(traced, pairs)
    comp.check_names([layer.name for layer in layers.values()])
    handlers: dict[fx.Node, Any] = {}
    rules: dict[str, Rule] = {}
    for i, (node, layer) in enumerate(layers.items()):
        rule = comp.rule_for(layer.name, layer.kind, first=(i == 0))
        rules[layer.name] = rule
        if rule.input_rule:
            src = node.args[0] if node.args else node.kwargs.get("input")
            if src not in traced.from_input:
                raise UnsupportedLayerError(
                    f"the rule {rule!r} (for layer {layer.name!r}) spreads relevance without the "
                    "layer's input values, so pellucid applies it only to a layer that reads the "
                    "model's input (up to reshapes); this layer reads the output of other "
                    "operations. Give it an a-weighted rule (Epsilon, ZPlus, Gamma, AlphaBeta).")
        handlers[node] = _affine_handler(layer, rule, sinks, dtype)
    for node in pairs:
        handlers[node] = lambda a, *args, **kwargs: a
    for node in traced.nodes("activation"):
        handlers[node] = _pass_handler(traced, node)
    for node in traced.nodes("avgpool"):
        handlers[node] = _norm_handler(traced, node, comp.pool_stabilizer)
    for node in traced.nodes("layernorm"):
        handlers[node] = _layernorm_handler(traced, node)
    for node in traced.nodes("embedding"):
        src = node.args[0] if node.args else node.kwargs.get("input")
        if src not in traced.from_input:
            raise UnsupportedLayerError(
                f"the embedding {traced.describe(node)} does not read the model's input")
        handlers[node] = _embedding_handler(traced, node, sinks, dtype)
    return handlers, rules


def _affine_handler(layer: Affine, rule: Rule, sinks: _backward.Sinks, dtype: torch.dtype):
    def handler(*args: Any, **kwargs: Any) -> torch.Tensor:
        a = _first_arg(args, kwargs)
        sink = sinks.new(a, dtype) if rule.input_rule else None
        return rule(layer, a, sink)
    return handler


def _pass_handler(traced: Traced, node: fx.Node):
    """Pass rule: an activation hands relevance through unchanged (``R_in = R_out``)."""
    fn = original(traced, node)

    def handler(*args: Any, **kwargs: Any) -> torch.Tensor:
        if args:
            return _Pass.apply(lambda t: fn(t, *args[1:], **kwargs), args[0])
        rest = {k: v for k, v in kwargs.items() if k != "input"}
        return _Pass.apply(lambda t: fn(input=t, **rest), kwargs["input"])
    return handler


class _Pass(torch.autograd.Function):
    """``y = f(a)`` whose backward multiplies by ``f(a) / a`` (0 where a = 0) instead of f'(a)."""

    @staticmethod
    def forward(ctx, fn, a):
        y = fn(a)
        ctx.ratio = torch.where(a == 0, torch.zeros_like(y), y / torch.where(a == 0, torch.ones_like(a), a))
        return y

    @staticmethod
    def backward(ctx, grad):
        return None, grad * ctx.ratio


def _norm_handler(traced: Traced, node: fx.Node, stabilizer: float):
    """Average pooling: the z-rule with a stabiliser (Zennit's ``Norm``)."""
    fn = original(traced, node)

    def handler(*args: Any, **kwargs: Any) -> torch.Tensor:
        z = fn(*args, **kwargs)
        if stabilizer == 0:
            return z
        with torch.no_grad():
            scale = _ratio(z, stabilizer)
        return scale_gradient(z, scale)
    return handler


def _layernorm_handler(traced: Traced, node: fx.Node):
    """LN-rule: the normalising scale held constant, so LayerNorm is an affine map of its input
    and relevance splits by LRP-0 (Ali et al. 2022, "XAI for Transformers")."""
    if node.op == "call_module":
        mod = traced.gm.get_submodule(node.target)

        def params(args, kwargs):
            return mod.normalized_shape, mod.weight, mod.bias, mod.eps
    else:
        def params(args, kwargs):
            names = ("input", "normalized_shape", "weight", "bias", "eps")
            given = dict(zip(names, args), **kwargs)
            return (given["normalized_shape"], given.get("weight"), given.get("bias"),
                    given.get("eps", 1e-5))

    def handler(*args: Any, **kwargs: Any) -> torch.Tensor:
        a = _first_arg(args, kwargs)
        shape, w, b, eps = params(args, kwargs)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        y = F.layer_norm(a, shape, w, b, eps)
        dims = tuple(range(-len(shape), 0))
        centred = a - a.mean(dim=dims, keepdim=True)
        scale = torch.rsqrt(a.var(dim=dims, unbiased=False, keepdim=True) + eps).detach()
        h = centred * scale
        if w is not None:
            h = h * w
        if b is not None:
            h = h + b
        return _through(h, y)
    return handler


def _embedding_handler(traced: Traced, node: fx.Node, sinks: _backward.Sinks, dtype: torch.dtype):
    """Relevance of a token: the sum of the relevance of its embedding vector."""
    fn = original(traced, node)

    def handler(*args: Any, **kwargs: Any) -> torch.Tensor:
        ids = _first_arg(args, kwargs)
        e = fn(*args, **kwargs)
        sink = sinks.new(ids, dtype)  # zeros: adds nothing to the value
        return e + e.detach() * sink.unsqueeze(-1)
    return handler
