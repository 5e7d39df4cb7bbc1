"""Post-training int8 quantization through torch's own ``torch.ao.quantization``.

- Dynamic (the default otherwise): ``quantize_dynamic`` of every ``nn.Linear`` (and LSTM/GRU): weights are stored as int8 with one scale per tensor, activations are quantized on
  the fly per batch. ``w ≈ scale · (q - zero_point)``, ``q ∈ [-128, 127]``. No calibration.
- Static (by default when calibration ``data`` is given and the model has convolutions):
  quantization in FX graph mode (``prepare_fx``/``convert_fx``) of Conv and
  Linear layers (fused with a following ReLU), activation ranges calibrated by running ``data``
  through observers. Needs a model ``torch.fx`` can trace.

``dtype="float16"`` stores Linear weights as half precision instead (dynamic only).

torch 2.13 marks ``torch.ao.quantization`` as deprecated in favour of ``torchao`` (not a
dependency here) and warns on every call; those ``DeprecationWarning``/``UserWarning`` messages
are silenced inside this function only. The quantized model runs on CPU.

Cost: a deep copy of the model, one forward pass over ``data`` to calibrate, and one forward pass
of each model over the report rows. Reference: Jacob et al. 2018, "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference".
"""
from __future__ import annotations

import io
import warnings
from typing import Any

import torch
from torch import nn

from ..errors import InputError, ModelError
from ..model import Model
from ._common import accuracy, agreement, copy_module, predict, split_data, torch_module
from ._report import QuantizeReport

__all__ = ["quantize"]

_DTYPES = {"int8": torch.qint8, "float16": torch.float16}


def _state_bytes(module: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.tell()


def _weight_bytes(module: nn.Module) -> tuple[dict[str, int], int]:
    """Bytes of each quantized layer's weight in a converted module, by layer name."""
    sizes = {}
    for name, m in module.named_modules():
        w = getattr(m, "weight", None)
        if callable(w) and type(m).__module__.startswith("torch.ao.nn.") and ".quantized" in type(m).__module__:
            t = w()
            sizes[name] = t.numel() * t.element_size()
    return sizes, sum(sizes.values())


def _silenced():
    """Deprecation notices of torch.ao.quantization silenced (warnings raised inside torch only)."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"torch(\.|$)")
        warnings.filterwarnings("ignore", category=category, message=r"(?s).*(quantiz|torchao|reduce_range)")
    return ctx


def quantize(
    model: Any,
    *,
    dtype: str = "int8",
    data: Any = None,
    static: bool | None = None,
    calibration_rows: int = 512,
    backend: str | None = None,
    batch_size: int | None = None,
) -> tuple[nn.Module, QuantizeReport]:
    """A quantized copy of ``model`` and a report of its size and cost; the model is untouched.

    Options:
        dtype: ``"int8"`` (default) or ``"float16"`` (dynamic only).
        data: inputs or ``(inputs, labels)``; the report then gives agreement with the
            original (and with labels the accuracy before and after) on all rows. Without it the
            report gives sizes only.
        static: quantize Conv and Linear layers statically, calibrated on the first
            ``calibration_rows`` rows of ``data`` (default None: static when ``data`` is given
            and the model has Conv layers, else dynamic quantization of the Linear layers).
        calibration_rows: rows used to calibrate static quantization (default 512).
        backend: quantized engine (default: torch's current ``torch.backends.quantized.engine``).
        batch_size: rows per forward pass for the report.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
        >>> q, report = quantize(net)
        >>> report.compression > 3.5
        True
    """
    if dtype not in _DTYPES:
        raise InputError(f"dtype must be one of {', '.join(_DTYPES)}; got {dtype!r}")
    original = torch_module(model, "quantize")
    wrapped = model if isinstance(model, Model) else Model(original, module=original)
    if wrapped.device.type != "cpu":
        raise ModelError(f"torch's int8 kernels run on CPU; move the model to CPU first (it is on {wrapped.device})")
    x = y = None
    if data is not None:
        x, y = split_data(wrapped, data)
    if static is None:
        static = x is not None and dtype == "int8" and any(
            isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in original.modules())
    if static and x is None:
        raise InputError("static quantization needs calibration data: pass data=inputs")
    if static and dtype != "int8":
        raise InputError("static quantization is int8 only; pass static=False for float16")
    engine = backend or torch.backends.quantized.engine
    if engine not in torch.backends.quantized.supported_engines:
        raise InputError(f"backend {engine!r} is not supported here; choose from "
                         f"{torch.backends.quantized.supported_engines}")
    copy = copy_module(original)
    previous_engine = torch.backends.quantized.engine
    ctx = _silenced()
    try:
        torch.backends.quantized.engine = engine
        if not static:
            from torch.ao.quantization import quantize_dynamic

            float_bytes = {n: m.weight.numel() * m.weight.element_size()
                           for n, m in copy.named_modules() if isinstance(m, nn.Linear)}
            # a holder, so that a bare nn.Linear (the root itself) is swapped too
            holder = quantize_dynamic(nn.Sequential(copy), {nn.Linear, nn.LSTM, nn.GRU},
                                      dtype=_DTYPES[dtype])
            quantized = holder[0]
            mode = "dynamic"
        else:
            float_bytes = {n: m.weight.numel() * m.weight.element_size() for n, m in copy.named_modules()
                           if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))}
            quantized = _static(copy, x[:calibration_rows], engine, batch_size)
            mode = "static"
        if dtype == "float16":
            q_sizes = {n: s // 2 for n, s in float_bytes.items()}
        else:
            q_sizes, _ = _weight_bytes(quantized)
        if not q_sizes:
            raise ModelError(f"{type(original).__name__} has no layers that {mode} quantization handles")
        layers = sorted(q_sizes)
        report = QuantizeReport(
            mode=mode, dtype=dtype, layers=layers, size_before=_state_bytes(original),
            size_after=_state_bytes(quantized),
            weight_bytes_before=sum(float_bytes.get(n, 0) for n in layers),
            weight_bytes_after=sum(q_sizes.values()),
            params={"dtype": dtype, "calibration_rows": calibration_rows, "backend": engine},
        )
        if x is not None:
            qmodel = Model(quantized, module=quantized)
            before = predict(wrapped, x, batch_size=batch_size)
            after = predict(qmodel, x, batch_size=batch_size)
            report.agreement = agreement(before, after)
            report.max_abs_diff = float((before - after).abs().max())
            report.accuracy_before = accuracy(wrapped, x, y, batch_size=batch_size)
            report.accuracy_after = accuracy(qmodel, x, y, batch_size=batch_size)
    finally:
        torch.backends.quantized.engine = previous_engine
        ctx.__exit__(None, None, None)
    return quantized, report


def _static(copy: nn.Module, calib: torch.Tensor, engine: str, batch_size: int | None) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    try:
        prepared = prepare_fx(copy, get_default_qconfig_mapping(engine), (calib[:1],))
    except Exception as err:
        raise ModelError(
            f"static quantization traces the model with torch.fx, which failed ({type(err).__name__}: "
            f"{err}); call quantize without data for dynamic quantization of the Linear layers"
        ) from err
    Model(prepared, module=prepared).outputs(calib, batch_size=batch_size, progress=False)
    return convert_fx(prepared)
