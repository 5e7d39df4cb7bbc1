""":func:`wrap` turns what the user has into a :class:`~pellucid.model.Model`: a torch module, a
callable on tensors, and through the black-box adapters numpy callables, scikit-learn, ONNX and
TorchScript.

Each adapter is a function ``obj -> Model | None`` in :data:`ADAPTERS`, tried in order before
the torch cases. A black-box model is evaluated on whole chunks of rows like any
other (one call per chunk, the rows converted to numpy once), but gives no gradients:
``Model.differentiable`` is ``False`` and gradient methods raise
:class:`~pellucid.errors.NotDifferentiableError` naming the methods that work.

* **scikit-learn** estimators (anything with ``fit`` and ``predict_proba`` or ``predict``):
  ``predict_proba`` when the estimator has it, else ``predict``; evaluated in float64.
* **ONNX** files (``*.onnx`` paths, ``onnx.ModelProto`` or ``onnxruntime.InferenceSession``),
  through onnxruntime on the CPU (``pip install pellucid[onnx]``); inputs cast to the graph's
  input type, the first output explained.
* **TorchScript** files (``*.pt``, ``*.pth``, ``*.ts``, ``*.torchscript`` paths): loaded with
  ``torch.jit.load`` and explained as a differentiable torch model (eval mode, frozen).
* **Callables on numpy arrays**: a plain function that is not a torch module is first called with
  a tensor; if that fails, or it returns a numpy array, it is called with numpy arrays from then on
  and treated as a black box. :func:`numpy_model` says so up front.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ModelError
from .model import Model

__all__ = [
    "wrap", "gradient_model", "ADAPTERS", "numpy_model", "sklearn_model", "onnx_model", "torchscript_model",
    "MODEL_AGNOSTIC",
]

#: Methods that need no gradients, named in errors when a gradient method meets a black box.
MODEL_AGNOSTIC = ("occlusion", "lime", "kernel_shap", "exact_shapley", "permutation_shapley")

_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")


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


def torchscript_model(path: Any, *, batch_size: int | None = None) -> Model:
    """A :class:`Model` around a TorchScript file, loaded with ``torch.jit.load`` (on the CPU)."""
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # torch raises RuntimeError or its own pickle errors
        raise ModelError(
            f"{path} could not be loaded as TorchScript ({err}). pellucid loads scripted or traced "
            "models saved with torch.jit.save; for a state dict, build the module and pass it"
        ) from err
    # The loaded module is ours alone, so it is put in eval mode and frozen here once; it is not
    # handed to the state-restoring context (which walks Python module attributes that a
    # ScriptModule keeps in C++), and layer-based methods do not see inside it.
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return Model(module, batch_size=batch_size, name=Path(str(path)).name)


class _Probing:
    """A plain callable of unknown kind: torch first, numpy if torch fails or numpy comes back.

    The first successful call decides for good; from then on there is no probing. A failure in
    both modes re-raises the torch-mode error (the usual cause is a wrong input shape).
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.mode: str | None = None
        self.model: Model | None = None

    def __call__(self, x: torch.Tensor) -> Any:
        if self.mode == "torch":
            return self.fn(x)
        if self.mode == "numpy":
            return self._numpy(x)
        try:
            out = self.fn(x)
        except Exception as err:
            try:
                out = self._numpy(x)
            except Exception:
                raise err from None
            self._decide("numpy")
            return out
        if isinstance(out, torch.Tensor) or hasattr(out, "logits") or (
                isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor)):
            self._decide("torch")
            return out
        self._decide("numpy")
        return _as_output(out, x.dtype if x.is_floating_point() else torch.float32).to(x.device)

    def _numpy(self, x: torch.Tensor) -> torch.Tensor:
        out_dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return _as_output(self.fn(x.detach().cpu().numpy()), out_dtype).to(x.device)

    def _decide(self, mode: str) -> None:
        self.mode = mode
        if mode == "numpy" and self.model is not None:
            self.model.differentiable = False


# -- the adapters wrap() consults -------------------------------------------------------------

def _sklearn_adapter(obj: Any) -> Model | None:
    if isinstance(obj, (nn.Module, type)) or not hasattr(obj, "fit"):
        return None
    if _has(obj, "predict_proba") or _has(obj, "predict"):
        return sklearn_model(obj)
    return None


def _file_adapter(obj: Any) -> Model | None:
    if type(obj).__module__.startswith("onnxruntime") or type(obj).__name__ == "ModelProto":
        return onnx_model(obj)
    if not isinstance(obj, (str, os.PathLike)):
        return None
    path = Path(obj)
    if path.suffix.lower() == ".onnx":
        return onnx_model(path)
    if path.suffix.lower() in _TORCHSCRIPT_SUFFIXES:
        if not path.is_file():
            raise ModelError(f"no model file at {path}")
        return torchscript_model(path)
    raise ModelError(f"cannot tell what kind of model {path} is: pellucid reads .onnx files "
                     f"(onnxruntime) and TorchScript files ({', '.join(_TORCHSCRIPT_SUFFIXES)})")


def _callable_adapter(obj: Any) -> Model | None:
    if isinstance(obj, (nn.Module, Model, type)) or not callable(obj):
        return None
    if isinstance(getattr(obj, "__self__", None), nn.Module):
        return None  # a bound method of a module: torch, with the module for state restoration
    probe = _Probing(obj)
    model = Model(probe, name=getattr(obj, "__name__", None) or type(obj).__name__)
    probe.model = model
    return model


#: Functions ``obj -> Model | None`` that :func:`wrap` consults, in order, before the torch cases.
ADAPTERS: list[Callable[[Any], Model | None]] = [_file_adapter, _sklearn_adapter, _callable_adapter]


def wrap(
    obj: Any,
    *,
    device: torch.device | str | None = None,
    eval_mode: bool = True,
    batch_size: int | None = None,
) -> Model:
    """Turn a model into a :class:`Model`.

    Accepts a :class:`Model` (returned as is, or a copy with new settings), a ``torch.nn.Module``,
    or any callable taking a batch tensor and returning one output row per input row. Further
    kinds come through :data:`ADAPTERS` (see :mod:`pellucid.adapters`): callables on numpy
    arrays, scikit-learn estimators (``predict_proba``, else ``predict``), ``.onnx`` files
    (onnxruntime) and TorchScript files; all but TorchScript are black boxes (no gradients).

    ``batch_size`` caps the rows in any one forward pass (default: about 2**18 input elements per
    pass). ``eval_mode`` puts a module in eval mode while it is explained (restored after).
    """
    if isinstance(obj, Model):
        if batch_size is None and device is None:
            return obj
        return Model(
            obj.fn, module=obj.module, device=device or obj.device, dtype=obj.dtype,
            batch_size=batch_size or obj.batch_size, differentiable=obj.differentiable,
            eval_mode=obj.eval_mode, name=obj.name,
        )
    for adapter in ADAPTERS:
        model = adapter(obj)
        if model is not None:
            if batch_size is not None:
                model.batch_size = batch_size
            if device is not None and model.differentiable:
                model.device = torch.device(device)
            model.eval_mode = eval_mode
            return model
    if isinstance(obj, nn.Module):
        return Model(obj, module=obj, device=device, batch_size=batch_size, eval_mode=eval_mode)
    if callable(obj):
        module = getattr(obj, "__self__", None)
        return Model(
            obj,
            module=module if isinstance(module, nn.Module) else None,
            device=device,
            batch_size=batch_size,
            eval_mode=eval_mode,
            name=getattr(obj, "__name__", None),
        )
    raise ModelError(
        f"cannot explain an object of type {type(obj).__name__}: pass a torch.nn.Module or a "
        "callable that maps a batch tensor to outputs"
    )


def gradient_model(model: Any, method: str, batch_size: int | None) -> Model:
    """:func:`wrap` ``model`` and check it gives gradients (``method`` names the caller in errors)."""
    m = wrap(model, batch_size=batch_size)
    m.require_gradients(method)
    return m
