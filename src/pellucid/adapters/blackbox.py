"""Black-box models: functions on numpy arrays, scikit-learn estimators and ONNX graphs.

Each is evaluated on whole chunks of rows (one call per chunk, the rows converted to numpy once)
and gives no gradients: ``Model.differentiable`` is ``False``.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from ..model import Model

__all__ = ["numpy_model", "sklearn_model", "onnx_model"]


def _as_output(out: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.detach().to(dtype)
    if isinstance(out, (list, tuple)) and out and not np.isscalar(out[0]):
        out = out[0]
    arr = np.asarray(out)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ModelError(f"the model returned values of dtype {arr.dtype}; expected numbers")
    return torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)


def _numpy_rows(x: torch.Tensor, np_dtype: Any | None) -> np.ndarray:
    arr = x.detach().cpu().numpy()
    return arr.astype(np_dtype, copy=False) if np_dtype is not None else arr


class _NumpyFn:
    """Calls ``fn`` on numpy rows and returns a tensor on ``device``."""

    def __init__(self, fn: Callable[[np.ndarray], Any], np_dtype: Any | None, out_dtype: torch.dtype,
                 device: torch.device) -> None:
        self.fn, self.np_dtype, self.out_dtype, self.device = fn, np_dtype, out_dtype, device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _as_output(self.fn(_numpy_rows(x, self.np_dtype)), self.out_dtype).to(self.device)


def numpy_model(fn: Callable[[np.ndarray], Any], *, dtype: torch.dtype = torch.float64,
                name: str | None = None, batch_size: int | None = None) -> Model:
    """A black-box :class:`Model` around a function of a numpy batch ``(n, ...)`` returning
    ``(n,)`` or ``(n, outputs)`` (a numpy array, list or tensor). Floating inputs are passed in
    ``dtype`` (float64 by default, numpy's own)."""
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    return Model(_NumpyFn(fn, np_dtype, dtype, torch.device("cpu")), device="cpu", dtype=dtype,
                 batch_size=batch_size, differentiable=False,
                 name=name or getattr(fn, "__name__", type(fn).__name__))


def sklearn_model(estimator: Any, *, batch_size: int | None = None) -> Model:
    """A black-box :class:`Model` around a fitted scikit-learn estimator: ``predict_proba``
    (one column per class) when it has one, else ``predict``."""
    fn = getattr(estimator, "predict_proba", None) if _has(estimator, "predict_proba") else None
    fn = fn or estimator.predict
    return numpy_model(fn, name=f"{type(estimator).__name__}.{fn.__name__}", batch_size=batch_size)


def _has(obj: Any, attr: str) -> bool:
    try:  # scikit-learn raises AttributeError from available_if when the method is unavailable
        return callable(getattr(obj, attr))
    except AttributeError:
        return False


_ONNX_TYPES = {
    "tensor(float)": (np.float32, torch.float32), "tensor(double)": (np.float64, torch.float64),
    "tensor(float16)": (np.float16, torch.float16), "tensor(int64)": (np.int64, torch.int64),
    "tensor(int32)": (np.int32, torch.int32),
}


def onnx_model(source: Any, *, batch_size: int | None = None, providers: list[str] | None = None) -> Model:
    """A black-box :class:`Model` running an ONNX graph with onnxruntime: a path, an
    ``onnx.ModelProto`` or an ``onnxruntime.InferenceSession``. The graph's first input takes the
    rows (its batch axis must be dynamic to take more than the exported batch size)."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ModelError("explaining an ONNX model needs onnxruntime: pip install 'pellucid[onnx]' "
                         "(or pip install onnxruntime)") from err
    if isinstance(source, ort.InferenceSession):
        session, name = source, "onnx"
    else:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise ModelError(f"no ONNX file at {path}")
            data, name = str(path), path.name
        else:  # onnx.ModelProto
            data, name = source.SerializeToString(), "onnx"
        try:
            session = ort.InferenceSession(data, providers=providers or ["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise ModelError(f"onnxruntime could not load {name}: {err}") from err
    first = session.get_inputs()[0]
    if first.type not in _ONNX_TYPES:
        raise ModelError(f"the ONNX graph's input {first.name!r} has type {first.type}; pellucid "
                         f"handles {', '.join(_ONNX_TYPES)}")
    np_dtype, dtype = _ONNX_TYPES[first.type]
    input_name = first.name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: x})[0]

    run.__name__ = name
    m = numpy_model(run, dtype=dtype, name=name, batch_size=batch_size)
    m.fn.np_dtype = np_dtype
    m.fn.out_dtype = dtype if dtype.is_floating_point else torch.float32
    return m
