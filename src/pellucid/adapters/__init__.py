""":func:`wrap` turns what the user has into a :class:`~pellucid.model.Model`: a torch module, a
callable on tensors, and through the adapters numpy callables, scikit-learn, ONNX, TorchScript and
``torch.export`` programs.

Each adapter is a function ``obj -> Model | None`` in :data:`ADAPTERS`, tried in order before
the torch cases; the black boxes live in :mod:`pellucid.adapters.blackbox`, the torch programs
(TorchScript, ``torch.export``) in :mod:`pellucid.adapters.programs`. A black-box model is
evaluated on whole chunks of rows like any other (one call per chunk, the rows converted to numpy
once), but gives no gradients:
``Model.differentiable`` is ``False`` and gradient methods raise
:class:`~pellucid.errors.NotDifferentiableError` naming the methods that work.

* **scikit-learn** estimators (anything with ``fit`` and ``predict_proba`` or ``predict``):
  ``predict_proba`` when the estimator has it, else ``predict``; evaluated in float64.
* **ONNX** files (``*.onnx`` paths, ``onnx.ModelProto`` or ``onnxruntime.InferenceSession``),
  through onnxruntime on the CPU (``pip install pellucid[onnx]``); inputs cast to the graph's
  input type, the first output explained.
* **TorchScript** files (``*.pt``, ``*.pth``, ``*.ts``, ``*.torchscript`` paths): loaded with
  ``torch.jit.load`` and explained as a differentiable torch model (eval mode, frozen). torch 2.13
  deprecates ``torch.jit.load``; pellucid silences that one warning around its own load.
* **torch.export** programs: an ``ExportedProgram``, its ``.module()``, or a ``.pt2`` file saved
  with ``torch.export.save`` (a file's contents decide, not its suffix). Differentiable like the
  module that was exported, never switched with ``eval()`` (which it refuses); export it in eval
  mode and with a dynamic batch dimension, or it is refused with that fix. Layer methods need
  ``torch.export.unflatten(program)`` (:mod:`pellucid.adapters.programs`).
* **Callables on numpy arrays**: a plain function that is not a torch module is first called with
  a tensor; if that fails, or it returns a numpy array, it is called with numpy arrays from then on
  and treated as a black box. :func:`numpy_model` says so up front.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..model import Model
from .blackbox import _as_output, _has, numpy_model, onnx_model, sklearn_model
from .programs import (
    _EXPORT_SUFFIXES,
    _TORCHSCRIPT_SUFFIXES,
    _exported,
    _ExportedFn,
    _is_exported_module,
    _is_pt2_archive,
    _load_exported,
    exported_model,
    torchscript_model,
)

__all__ = [
    "wrap", "gradient_model", "ADAPTERS", "numpy_model", "sklearn_model", "onnx_model", "torchscript_model",
    "exported_model", "MODEL_AGNOSTIC",
]

#: Methods that need no gradients, named in errors when a gradient method meets a black box.
MODEL_AGNOSTIC = ("occlusion", "lime", "kernel_shap", "exact_shapley", "permutation_shapley")


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
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return onnx_model(path)
    if suffix in _TORCHSCRIPT_SUFFIXES + _EXPORT_SUFFIXES:
        if not path.is_file():
            raise ModelError(f"no model file at {path}")
        # The contents decide, not the suffix: torch.export.save writes any name it is given.
        if suffix in _EXPORT_SUFFIXES or _is_pt2_archive(path):
            return _exported(_load_exported(path), name=path.name)
        return torchscript_model(path)
    raise ModelError(f"cannot tell what kind of model {path} is: pellucid reads .onnx files "
                     f"(onnxruntime), TorchScript files ({', '.join(_TORCHSCRIPT_SUFFIXES)}) and "
                     "torch.export programs (.pt2)")


def _export_adapter(obj: Any) -> Model | None:
    if isinstance(obj, torch.export.ExportedProgram) or _is_exported_module(obj):
        return _exported(obj)
    return None


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
ADAPTERS: list[Callable[[Any], Model | None]] = [_file_adapter, _export_adapter, _sklearn_adapter,
                                                  _callable_adapter]


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
    (onnxruntime), TorchScript files, and ``torch.export`` programs (an ``ExportedProgram``, its
    ``.module()`` or a ``.pt2`` file); all but TorchScript and exported programs are black boxes
    (no gradients).

    ``batch_size`` caps the rows in any one forward pass (default: about 2**18 input elements per
    pass). ``eval_mode`` puts a module in eval mode while it is explained (restored after); an
    exported program keeps the mode it was exported in, and one exported in training mode is
    refused unless ``eval_mode=False``.
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
            if isinstance(model.fn, _ExportedFn):  # its mode is in its graph; eval() is refused
                model.fn.check_mode(eval_mode)
            else:
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
