"""Causal questions asked of the model itself: do-interventions on inputs, ablation and
activation patching of hidden units.

* :func:`intervene` sets input features to fixed values, ``do(X_j = v)``, and reports the change
  of the explained output per row and on average (the average treatment effect *on the model*).
* :func:`ablate` overwrites units (channels, dim 1) of a layer's output with a constant or their
  mean over the inputs, and reports the change of the output.
* :func:`patch` runs a baseline (a corrupted input) with chosen units of a layer set to their
  values under the inputs, and reports how much of the inputs-minus-baseline difference that
  restores.

Layers are hooked through :mod:`pellucid._hooks`: a layer is a dotted name, a module, or the call
site ``"name@k"`` of a module that runs several times in one forward pass (a plain name on such a
module is refused, since one value per row is needed). Every function runs inside
``Model.explaining()``: hooks are removed and the model is left as found, also when it raises.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .._common import resolve_baseline
from .._deprecation import renamed
from .._hooks import capture, layer_key, replacing
from ..adapters import wrap
from ..errors import InputError, LayerError
from ..model import gather, select_target
from ._result import AblationResult, InterventionResult, PatchResult

__all__ = ["intervene", "ablate", "patch", "InterventionResult", "AblationResult", "PatchResult"]


def _units(units: Any, output: torch.Tensor, name: str) -> torch.Tensor:
    """Unit indices along dim 1 of ``output`` as a sorted, unique LongTensor on its device."""
    if output.dim() < 2:
        raise LayerError(
            f"layer {name!r} gives outputs of shape {tuple(output.shape)}; units are indexed "
            "along dim 1, so the output needs a batch and a unit dimension"
        )
    size = output.shape[1]
    if isinstance(units, (bool, float)):
        raise InputError(f"units must be an int or a sequence of ints, got {units!r}")
    try:
        t = torch.as_tensor(np.asarray(units.cpu() if isinstance(units, torch.Tensor) else units))
    except Exception as err:
        raise InputError(f"units must be an int or a sequence of ints, got {units!r}") from err
    if t.is_floating_point() or t.dtype == torch.bool or t.dim() > 1:
        raise InputError(f"units must be an int or a 1-D sequence of ints, got {units!r}")
    t = t.reshape(-1).long()
    if len(t) == 0:
        raise InputError("units is empty; give at least one unit index")
    bad = (t < 0) | (t >= size)
    if bool(bad.any()):
        raise InputError(
            f"unit {int(t[bad][0])} is out of range for layer {name!r}, whose output has {size} "
            f"units along dim 1 (valid: 0 to {size - 1})"
        )
    return torch.unique(t).to(output.device)


def _capture_once(m: Any, layer: Any, key: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(outputs, layer's output)`` of one forward pass, refusing a reused layer."""
    with capture(m, [layer]) as (run, seen):
        out = m.forward(x)
        run.check_once(key)
    return out, seen[key][0]


def _replaced_once(m: Any, layer: Any, key: str, x: torch.Tensor, make: Any) -> torch.Tensor:
    """The outputs of one forward pass with ``layer``'s output ``a`` replaced by ``make(a)``."""
    with replacing(m, layer, make) as (run, _):
        out = m.forward(x)
        run.check_once(key)
    return out


# -- intervene ---------------------------------------------------------------------------------
def _feature_index(key: Any, row_shape: tuple[int, ...]) -> tuple[int, ...]:
    idx = key if isinstance(key, tuple) else (key,)
    ok = all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in idx)
    if not ok or len(idx) != len(row_shape) or any(not 0 <= i < d for i, d in zip(idx, row_shape)):
        hint = ("an int in 0.." + str(row_shape[0] - 1)) if len(row_shape) == 1 else (
            f"a tuple of {len(row_shape)} ints indexing a row of shape {tuple(row_shape)}")
        raise InputError(
            f"unknown feature {key!r} in do=: rows have shape {tuple(row_shape)}, so a feature is "
            f"{hint}"
        )
    return tuple(int(i) for i in idx)


@renamed(data="inputs")
def intervene(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    do: dict,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> InterventionResult:
    """The effect of ``do(X_j = v)`` on the model: ``f_t(x with x_j := v) - f_t(x)`` per row.

    ``do`` maps a feature to a value: an ``int`` column for tabular ``(n, d)`` inputs, or a tuple
    indexing one row (``(0, 3, 4)`` for channel 0, pixel (3, 4) of an image). Every row gets every
    listed feature set. ``target`` as everywhere (default: the argmax at the original inputs).
    The mean effect is the average treatment effect of the intervention on the model's output
    (the model's, not the world's: no causal graph among the inputs is assumed).
    Cost: two forward passes per row. ``data=`` is the deprecated name of ``inputs=``.

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(3, 1)
        >>> r = intervene(lin, torch.zeros(4, 3), do={1: 2.0})
        >>> torch.allclose(r.effect, 2 * lin.weight[0, 1].detach())
        True
    """
    m = wrap(model)
    if not isinstance(do, dict) or not do:
        raise InputError("do must be a non-empty dict mapping features to values, e.g. do={2: 0.0}")
    with m.explaining():
        x = m.prepare(inputs)
        row_shape = tuple(x.shape[1:])
        if not row_shape:
            raise InputError(f"inputs must be rows shaped (n, d) or (n, ...); got shape {tuple(x.shape)}")
        xd = x.clone()
        for key, value in do.items():
            idx = _feature_index(key, row_shape)
            if (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                    or not math.isfinite(value)):
                raise InputError(f"do[{key!r}] must be a finite number, got {value!r}")
            xd[(slice(None),) + idx] = value
        before_all = m.outputs(x, batch_size=batch_size, progress=progress)
        after_all = m.outputs(xd, batch_size=batch_size, progress=progress)
    t = select_target(before_all, target)
    before, after = gather(before_all, t), gather(after_all, t)
    effect = after - before
    n = len(effect)
    stderr = float(effect.double().std() / math.sqrt(n)) if n > 1 else float("nan")
    return InterventionResult(before=before, after=after, effect=effect,
                              mean_effect=float(effect.double().mean()), stderr=stderr, target=t,
                              do=dict(do), inputs=xd)


# -- ablate ------------------------------------------------------------------------------------
def ablate(
    model: Any,
    inputs: Any,
    *,
    target: Any = None,
    layer: str | nn.Module,
    units: Any,
    value: float | str = 0.0,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> AblationResult:
    """Set ``units`` (indices along dim 1 of ``layer``'s output) to ``value`` and rerun.

    ``value`` is a number (zero ablation by default) or ``"mean"``: each unit's mean over the
    given inputs (over rows only, so a conv channel keeps its mean spatial map), computed in the
    first pass. ``layer`` is a name, a module or a call site ``"name@k"`` (the k-th call of a
    reused module). ``target`` as everywhere (default: the argmax without ablation).
    Cost: two forward passes per row.

    Reference: mean ablation as in Wang et al. 2022, "Interpretability in the Wild".
    """
    m = wrap(model)
    key = layer_key(m, layer)
    if not (value == "mean" or (isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
                                and math.isfinite(value))):
        raise InputError(f"value must be a finite number or 'mean', got {value!r}")
    idx, total = None, None
    with m.explaining(), torch.no_grad():
        x = m.prepare(inputs)

        def chunks() -> Any:
            return m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=progress,
                            desc="ablate")

        before = []
        for rows, _ in chunks():
            out, a = _capture_once(m, layer, key, x[rows])
            before.append(out)
            idx = _units(units, a, key) if idx is None else idx
            if value == "mean":
                part = a[:, idx].double().sum(0)
                total = part if total is None else total + part
        fill = (total / len(x)) if value == "mean" else value

        def ablated(a: torch.Tensor) -> torch.Tensor:
            a = a.clone()
            a[:, idx] = fill.to(a.dtype) if isinstance(fill, torch.Tensor) else fill
            return a

        after = [_replaced_once(m, layer, key, x[rows], ablated) for rows, _ in chunks()]
    before_all, after_all = torch.cat(before), torch.cat(after)
    t = select_target(before_all, target)
    b, a = gather(before_all, t), gather(after_all, t)
    return AblationResult(before=b, after=a, effect=a - b, target=t, layer=key, units=idx.cpu(),
                          value=value)


# -- patch -------------------------------------------------------------------------------------
def _patching(key: str, acts: torch.Tensor, idx: torch.Tensor | None) -> Any:
    """``a -> a`` with ``units`` (all if ``idx`` is None) taken from ``acts``, the same layer's
    output on the inputs."""

    def patched(a: torch.Tensor) -> torch.Tensor:
        if a.shape != acts.shape:
            raise LayerError(
                f"layer {key!r} gives outputs of shape {tuple(acts.shape)} on the inputs and "
                f"{tuple(a.shape)} on the baseline; patching needs the same shape"
            )
        if idx is None:
            return acts.clone()
        a = a.clone()
        a[:, idx] = acts[:, idx]
        return a

    return patched


@renamed(clean="inputs", corrupt="baseline")
def patch(
    model: Any,
    inputs: Any,
    baseline: Any,
    *,
    target: Any = None,
    layer: str | nn.Module,
    units: Any = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> PatchResult:
    """Activation patching: run ``baseline`` with ``units`` of ``layer`` set to their values at
    ``inputs``; ``restored = (f_t(patched) - f_t(baseline)) / (f_t(inputs) - f_t(baseline))``.

    ``inputs`` are the rows whose answer is explained (the "clean" run); ``baseline`` the
    reference they are compared with (the "corrupted" run): one row per input, one row for all,
    or a number, as a baseline everywhere in pellucid. Row i of the baseline receives the
    activations of row i of the inputs. ``units`` are indices along dim 1 of the layer's output;
    ``None`` patches the whole output. ``layer`` is a name, a module or a call site ``"name@k"``.
    ``target`` as everywhere (default: the argmax at the inputs). ``restored`` is the share of
    the difference that the patch brings back: 1 means fully restored, 0 not at all.
    Cost: three forward passes per row. ``clean=`` and ``corrupt=`` are the deprecated names of
    ``inputs=`` and ``baseline=``.

    Reference: Meng et al. 2022, "Locating and Editing Factual Associations in GPT" (causal tracing).
    """
    m = wrap(model)
    key = layer_key(m, layer)
    idx = None
    parts: dict[str, list[torch.Tensor]] = {"inputs": [], "baseline": [], "patched": [], "t": []}
    with m.explaining(), torch.no_grad():
        x = m.prepare(inputs)
        base = resolve_baseline(baseline, x)
        for rows, t in m.chunks(len(x), x.shape[1:], target=target, batch_size=batch_size,
                                progress=progress, desc="patch"):
            out_x, acts = _capture_once(m, layer, key, x[rows])
            t = select_target(out_x, t)
            if units is not None and idx is None:
                idx = _units(units, acts, key)
            out_b = m.forward(base[rows])
            out_p = _replaced_once(m, layer, key, base[rows], _patching(key, acts, idx))
            for name, out in (("inputs", out_x), ("baseline", out_b), ("patched", out_p)):
                parts[name].append(gather(out, t))
            parts["t"].append(t)
    c, r, p = (torch.cat(parts[k]) for k in ("inputs", "baseline", "patched"))
    diff = c - r
    restored = torch.where(diff != 0, (p - r) / torch.where(diff != 0, diff, torch.ones_like(diff)),
                           torch.full_like(diff, float("nan")))
    return PatchResult(outputs=c, baseline_outputs=r, patched=p, restored=restored,
                       target=torch.cat(parts["t"]), layer=key,
                       units=None if idx is None else idx.cpu())
