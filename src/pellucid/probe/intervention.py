"""Causal questions asked of the model itself: do-interventions on inputs, ablation and
activation patching of hidden units.

* :func:`intervene` sets input features to fixed values, ``do(X_j = v)``, and reports the change
  of the explained output per row and on average (the average treatment effect *on the model*).
* :func:`ablate` overwrites units (channels, dim 1) of a layer's output with a constant or their
  mean over the inputs, and reports the change of the output.
* :func:`patch` runs a corrupted input with chosen units of a layer set to their values under a
  clean input, and reports how much of the clean-minus-corrupt difference that restores.

Every function runs inside ``Model.explaining()``: hooks are removed and the model is left as
found, also when it raises.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..errors import InputError, LayerError
from ..model import Model, gather, normalize_target, select_target
from .._hooks import layer_name
from ..adapters import wrap

__all__ = ["intervene", "ablate", "patch", "InterventionResult", "AblationResult", "PatchResult"]


# -- shared hook mechanics (also used by examples.py) ------------------------------------------
class _HookAbort(Exception):
    """Carries an error (or a stop request) out of a forward hook.

    ``Model.forward`` turns ``RuntimeError``/``ValueError``/``IndexError`` into a message about
    input shapes; a plain ``Exception`` subclass passes through it untouched.
    """

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__(error)
        self.error = error


def _check_output(m: Model, layer: nn.Module, output: Any) -> torch.Tensor:
    if not isinstance(output, torch.Tensor):
        raise _HookAbort(LayerError(
            f"layer {layer_name(m, layer)!r} returns {type(output).__name__}; pick a layer whose "
            "output is a single tensor"
        ))
    return output


@contextlib.contextmanager
def forward_hook(
    m: Model, layer: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor | None]
) -> Iterator[list[int]]:
    """Register ``fn(output) -> new output | None`` on ``layer``; yields a one-item call counter.

    The handle is removed on exit; errors raised by ``fn`` as :class:`_HookAbort` come out as
    the error they carry.
    """
    calls = [0]

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        calls[0] += 1
        return fn(_check_output(m, layer, output))

    handle = layer.register_forward_hook(hook)
    try:
        yield calls
    except _HookAbort as abort:
        if abort.error is None:
            raise
        raise abort.error from None
    finally:
        handle.remove()


def run_once(m: Model, layer: nn.Module, x: torch.Tensor, calls: list[int]) -> torch.Tensor:
    """``m.forward(x)`` without gradients, checking that the hooked layer ran exactly once."""
    calls[0] = 0
    with torch.no_grad():
        out = m.forward(x)
    if calls[0] != 1:
        raise LayerError(
            f"layer {layer_name(m, layer)!r} must run exactly once per forward pass "
            f"(it ran {calls[0]} time(s)); pick a layer that is not reused"
        )
    return out


def _units(units: Any, size: int, name: str) -> torch.Tensor:
    """Unit indices as a sorted, unique LongTensor, checked against ``size`` units."""
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
    return torch.unique(t)


def _unit_index(m: Model, layer: nn.Module, output: torch.Tensor, units: Any) -> torch.Tensor:
    if output.dim() < 2:
        raise _HookAbort(LayerError(
            f"layer {layer_name(m, layer)!r} gives outputs of shape {tuple(output.shape)}; units "
            "are indexed along dim 1, so the output needs a batch and a unit dimension"
        ))
    try:
        return _units(units, output.shape[1], layer_name(m, layer)).to(output.device)
    except InputError as err:
        raise _HookAbort(err) from None


# -- intervene ---------------------------------------------------------------------------------
@dataclass
class InterventionResult:
    """Outputs of the explained target before and after ``do(...)``, one per row.

    ``effect = after - before``; ``mean_effect`` is its mean, the average treatment effect of the
    intervention on the model's output, with ``stderr`` its standard error.
    """

    before: torch.Tensor
    after: torch.Tensor
    effect: torch.Tensor
    mean_effect: float
    stderr: float
    target: torch.Tensor
    do: dict
    inputs: torch.Tensor = field(repr=False)

    def __repr__(self) -> str:
        return (f"InterventionResult(rows={len(self.effect)}, do={self.do}, "
                f"mean_effect={self.mean_effect:.6g} ± {self.stderr:.2g})")


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


def intervene(
    model: Any,
    data: Any,
    *,
    do: dict,
    target: Any = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> InterventionResult:
    """The effect of ``do(X_j = v)`` on the model: ``f_t(x with x_j := v) - f_t(x)`` per row.

    ``do`` maps a feature to a value: an ``int`` column for tabular ``(n, d)`` data, or a tuple
    indexing one row (``(0, 3, 4)`` for channel 0, pixel (3, 4) of an image). Every row gets every
    listed feature set. ``target`` as everywhere (default: the argmax at the original data).
    The mean effect is the average treatment effect of the intervention on the model's output
    (the model's, not the world's: no causal graph among the inputs is assumed).
    Cost: two forward passes per row.

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
        x = m.prepare(data, name="data")
        row_shape = tuple(x.shape[1:])
        if not row_shape:
            raise InputError(f"data must be rows shaped (n, d) or (n, ...); got shape {tuple(x.shape)}")
        xd = x.clone()
        for key, value in do.items():
            idx = _feature_index(key, row_shape)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
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
@dataclass
class AblationResult:
    """Outputs of the explained target with and without the ablation; ``effect = after - before``."""

    before: torch.Tensor
    after: torch.Tensor
    effect: torch.Tensor
    target: torch.Tensor
    layer: str
    units: torch.Tensor
    value: Any

    @property
    def mean_effect(self) -> float:
        return float(self.effect.double().mean())

    def __repr__(self) -> str:
        return (f"AblationResult(rows={len(self.effect)}, layer={self.layer!r}, "
                f"units={self.units.tolist()}, value={self.value!r}, mean_effect={self.mean_effect:.6g})")


def ablate(
    model: Any,
    inputs: Any,
    *,
    layer: str | nn.Module,
    units: Any,
    value: float | str = 0.0,
    target: Any = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> AblationResult:
    """Set ``units`` (indices along dim 1 of ``layer``'s output) to ``value`` and rerun.

    ``value`` is a number (zero ablation by default) or ``"mean"``: each unit's mean over the
    given inputs (over rows only, so a conv channel keeps its mean spatial map), computed in the
    first pass. ``target`` as everywhere (default: the argmax without ablation).
    Cost: two forward passes per row.

    Reference: mean ablation as in Wang et al. 2022, "Interpretability in the Wild".
    """
    m = wrap(model)
    module = m.layer(layer)
    name = layer_name(m, module)
    if not (value == "mean" or (isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
                                and math.isfinite(value))):
        raise InputError(f"value must be a finite number or 'mean', got {value!r}")
    with m.explaining():
        x = m.prepare(inputs)
        state: dict[str, Any] = {"sum": None, "units": None}

        def record(out: torch.Tensor) -> None:
            if state["units"] is None:
                state["units"] = _unit_index(m, module, out, units)
            if value == "mean":
                part = out.detach()[:, state["units"]].double().sum(0)
                state["sum"] = part if state["sum"] is None else state["sum"] + part
            return None

        with forward_hook(m, module, record) as calls:
            before_all = torch.cat([
                run_once(m, module, x[s], calls)
                for s, _ in m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=progress,
                                  desc="ablate")
            ])
        idx = state["units"]
        fill = state["sum"] / len(x) if value == "mean" else value

        def replace(out: torch.Tensor) -> torch.Tensor:
            out = out.clone()
            out[:, idx] = fill.to(out.dtype) if isinstance(fill, torch.Tensor) else fill
            return out

        with forward_hook(m, module, replace) as calls:
            after_all = torch.cat([
                run_once(m, module, x[s], calls)
                for s, _ in m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=progress,
                                  desc="ablate")
            ])
    t = select_target(before_all, target)
    before, after = gather(before_all, t), gather(after_all, t)
    return AblationResult(before=before, after=after, effect=after - before, target=t, layer=name,
                          units=idx.cpu(), value=value)


# -- patch -------------------------------------------------------------------------------------
@dataclass
class PatchResult:
    """Activation patching, per row: the target's output at clean, at corrupt, and at corrupt
    with the units patched; ``restored = (patched - corrupt) / (clean - corrupt)`` (NaN where
    clean == corrupt)."""

    clean: torch.Tensor
    corrupt: torch.Tensor
    patched: torch.Tensor
    restored: torch.Tensor
    target: torch.Tensor
    layer: str
    units: torch.Tensor | None

    @property
    def mean_restored(self) -> float:
        """Mean of ``restored`` over the rows where it is defined (NaN if none)."""
        r = self.restored[~torch.isnan(self.restored)]
        return float(r.double().mean()) if len(r) else float("nan")

    def __repr__(self) -> str:
        units = "all" if self.units is None else self.units.tolist()
        return (f"PatchResult(rows={len(self.restored)}, layer={self.layer!r}, units={units}, "
                f"mean_restored={self.mean_restored:.4g})")


def patch(
    model: Any,
    clean: Any,
    corrupt: Any,
    *,
    layer: str | nn.Module,
    units: Any = None,
    target: Any = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> PatchResult:
    """Activation patching: run ``corrupt`` with ``units`` of ``layer`` set to their ``clean`` values.

    Row i of ``corrupt`` receives the activations of row i of ``clean`` (same number of rows).
    ``units`` are indices along dim 1 of the layer's output; ``None`` patches the whole output.
    ``target`` as everywhere (default: the argmax at ``clean``). ``restored`` is the share of the
    clean - corrupt difference of the target output that the patch brings back: 1 means fully
    restored, 0 not at all. Cost: three forward passes per row.

    Reference: Meng et al. 2022, "Locating and Editing Factual Associations in GPT" (causal tracing).
    """
    m = wrap(model)
    module = m.layer(layer)
    name = layer_name(m, module)
    with m.explaining():
        xc = m.prepare(clean, name="clean")
        xr = m.prepare(corrupt, name="corrupt")
        if len(xc) != len(xr) or xc.shape[1:] != xr.shape[1:]:
            raise InputError(
                f"clean and corrupt must have the same number of rows and the same row shape "
                f"(row i of corrupt is patched from row i of clean); got clean {tuple(xc.shape)} "
                f"and corrupt {tuple(xr.shape)}"
            )
        per_row = normalize_target(target, len(xc))
        state: dict[str, Any] = {"acts": None, "units": None, "mode": "record"}

        def hook(out: torch.Tensor) -> torch.Tensor | None:
            if state["mode"] == "off":
                return None
            if state["mode"] == "record":
                if units is not None and state["units"] is None:
                    state["units"] = _unit_index(m, module, out, units)
                state["acts"] = out.detach()
                return None
            acts = state["acts"]
            if acts.shape != out.shape:
                raise _HookAbort(LayerError(
                    f"layer {name!r} gives outputs of shape {tuple(acts.shape)} on clean and "
                    f"{tuple(out.shape)} on corrupt; patching needs the same shape"
                ))
            if state["units"] is None:
                return acts.clone()
            out = out.clone()
            out[:, state["units"]] = acts[:, state["units"]]
            return out

        parts: dict[str, list[torch.Tensor]] = {"clean": [], "corrupt": [], "patched": [], "t": []}
        with forward_hook(m, module, hook) as calls:
            for s, _ in m.chunks(len(xc), xc.shape[1:], batch_size=batch_size, progress=progress,
                              desc="patch"):
                state["mode"] = "record"
                out_c = run_once(m, module, xc[s], calls)
                t = select_target(out_c, per_row[s] if isinstance(per_row, torch.Tensor) else per_row)
                state["mode"] = "off"
                out_r = run_once(m, module, xr[s], calls)
                state["mode"] = "patch"
                out_p = run_once(m, module, xr[s], calls)
                state["acts"] = None
                for key, out in (("clean", out_c), ("corrupt", out_r), ("patched", out_p)):
                    parts[key].append(gather(out, t))
                parts["t"].append(t)
    c, r, p = (torch.cat(parts[k]) for k in ("clean", "corrupt", "patched"))
    diff = c - r
    restored = torch.where(diff != 0, (p - r) / torch.where(diff != 0, diff, torch.ones_like(diff)),
                           torch.full_like(diff, float("nan")))
    return PatchResult(clean=c, corrupt=r, patched=p, restored=restored, target=torch.cat(parts["t"]),
                       layer=name, units=None if state["units"] is None else state["units"].cpu())
