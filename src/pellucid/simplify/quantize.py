"""Post-training int8 quantization through torch's own ``torch.ao.quantization``.

- Dynamic (the default otherwise): ``quantize_dynamic`` of every ``nn.Linear`` (and LSTM/GRU):
  weights are stored as int8 with one scale per tensor, activations are quantized on the fly per
  batch. ``w ≈ scale · (q - zero_point)``, ``q ∈ [-128, 127]``. No calibration.
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

import contextlib
import io
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .._common import check_choice, check_positive_int
from ..errors import InputError, ModelError
from ..model import Model
from ._data import split_data
from ._report import QuantizeReport, Simplified, recorded
from ._training import agreement, as_module, copy_module, predict

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
        where = type(m).__module__
        if callable(w) and where.startswith("torch.ao.nn.") and ".quantized" in where:
            t = w()
            sizes[name] = t.numel() * t.element_size()
    return sizes, sum(sizes.values())


@contextlib.contextmanager
def _quantizing(engine: str) -> Iterator[None]:
    """torch's quantized ``engine`` set inside, and the deprecation notices of
    torch.ao.quantization silenced (warnings raised inside torch only); both restored after."""
    previous = torch.backends.quantized.engine
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category, module=r"torch(\.|$)")
            warnings.filterwarnings("ignore", category=category,
                                    message=r"(?s).*(quantiz|torchao|reduce_range)")
        torch.backends.quantized.engine = engine
        try:
            yield
        finally:
            torch.backends.quantized.engine = previous


def _float_bytes(module: nn.Module, kinds: tuple[type, ...]) -> dict[str, int]:
    """Bytes of the float weight of each layer of one of ``kinds``, by layer name."""
    return {n: m.weight.numel() * m.weight.element_size() for n, m in module.named_modules()
            if isinstance(m, kinds)}


@recorded()
def quantize(
    model: Any,
    data: Any = None,
    *,
    dtype: str = "int8",
    static: bool | None = None,
    calibration_rows: int = 512,
    backend: str | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> Simplified:
    """A quantized copy of ``model`` and a report of its size and cost; the model is untouched.
    Returns ``Simplified(model=quantized copy, report=QuantizeReport)``.

    Options:
        data: inputs or ``(inputs, labels)``; the report then gives agreement with the
            original (and with labels the accuracy before and after) on all rows. Without it the
            report gives sizes only.
        dtype: ``"int8"`` (default) or ``"float16"`` (dynamic only).
        static: quantize Conv and Linear layers statically, calibrated on the first
            ``calibration_rows`` rows of ``data`` (default None: static when ``data`` is given
            and the model has Conv layers, else dynamic quantization of the Linear layers).
        calibration_rows: rows used to calibrate static quantization (default 512).
        backend: quantized engine (default: torch's current ``torch.backends.quantized.engine``).
        batch_size: rows per forward pass (calibration and the report).
        progress: a progress bar over the forward passes on runs longer than two seconds.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
        >>> q, report = quantize(net)
        >>> report.compression > 3.5
        True
    """
    check_choice(dtype, "dtype", _DTYPES)
    calibration_rows = check_positive_int(calibration_rows, "calibration_rows")
    original, wrapped = as_module(model, "quantize")
    if wrapped.device.type != "cpu":
        raise ModelError(f"torch's int8 kernels run on CPU; move the model to CPU first "
                         f"(it is on {wrapped.device})")
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
    engine = check_choice(backend or torch.backends.quantized.engine, "backend",
                          torch.backends.quantized.supported_engines)
    copy, _ = copy_module(original)
    with _quantizing(engine):
        if not static:
            from torch.ao.quantization import quantize_dynamic

            float_bytes = _float_bytes(copy, (nn.Linear,))
            # a holder, so that a bare nn.Linear (the root itself) is swapped too
            holder = quantize_dynamic(nn.Sequential(copy), {nn.Linear, nn.LSTM, nn.GRU},
                                      dtype=_DTYPES[dtype])
            quantized = holder[0]
            mode = "dynamic"
        else:
            float_bytes = _float_bytes(copy, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
            quantized = _static(copy, x[:calibration_rows], engine, batch_size, progress)
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
            params={"backend": engine},
        )
        if x is not None:
            before = predict(wrapped, x, batch_size=batch_size, progress=progress)
            after = predict(Model(quantized, module=quantized), x, batch_size=batch_size, progress=progress)
            report.agreement = agreement(before, after)
            report.max_abs_diff = float((before - after).abs().max())
            if y is not None:
                report.accuracy_before, report.accuracy_after = agreement(before, y), agreement(after, y)
    return Simplified(quantized, report)


def _static(copy: nn.Module, calib: torch.Tensor, engine: str, batch_size: int | None,
            progress: bool | None) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    try:
        prepared = prepare_fx(copy, get_default_qconfig_mapping(engine), (calib[:1],))
    except Exception as err:
        raise ModelError(
            f"static quantization traces the model with torch.fx, which failed ({type(err).__name__}: "
            f"{err}); call quantize without data for dynamic quantization of the Linear layers"
        ) from err
    Model(prepared, module=prepared).outputs(calib, batch_size=batch_size, progress=progress)
    return convert_fx(prepared)
