"""Torch models saved without their Python source: TorchScript files and ``torch.export``
programs (an ``ExportedProgram``, its ``.module()``, a ``.pt2`` file). Both are differentiable.

An exported program's module refuses ``eval()`` and ``train()`` (its mode was fixed when it was
exported), so it is never switched: a program exported in training mode is refused (see
:meth:`_ExportedFn.check_mode`), and one exported with a static batch size is refused when asked
for another batch size, both with the fix in the message. Its layers are inlined into one graph:
layer methods need ``torch.export.unflatten(program)``, a module tree wrapped like any module.
"""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, ModelError
from ..model import Model

__all__ = ["torchscript_model", "exported_model"]

_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")
_EXPORT_SUFFIXES = (".pt2",)


def torchscript_model(path: Any, *, batch_size: int | None = None) -> Model:
    """A :class:`Model` around a TorchScript file, loaded with ``torch.jit.load`` (on the CPU)."""
    try:
        with warnings.catch_warnings():
            # torch 2.13 deprecates torch.jit.load in favour of torch.export; the user asked for
            # this file, so the warning is about pellucid's call, not theirs.
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated",
                                    category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # torch raises RuntimeError or its own pickle errors
        raise ModelError(
            f"{path} could not be loaded as TorchScript ({err}). pellucid loads scripted or traced "
            "models saved with torch.jit.save and programs saved with torch.export.save; for a "
            "state dict, build the module and pass it"
        ) from err
    # The loaded module is ours alone, so it is put in eval mode and frozen here once; it is not
    # handed to the state-restoring context (which walks Python module attributes that a
    # ScriptModule keeps in C++), and layer-based methods do not see inside it.
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return Model(module, batch_size=batch_size, name=Path(str(path)).name)


# -- torch.export programs ------------------------------------------------------------------------

#: Schema arguments that make an aten op behave as in training (dropout, batch statistics, RReLU
#: noise), and the rate arguments that make a dropout the identity when zero.
_TRAINING_FLAGS, _RATES = ("train", "training"), ("p", "dropout_p")


def _training_ops(graph_module: torch.fx.GraphModule) -> list[str]:
    """The ops of an exported graph that run in training mode (``aten.dropout(x, 0.5, True)``)."""
    found = set()
    for node in graph_module.graph.nodes:
        schema = getattr(node.target, "_schema", None) if node.op == "call_function" else None
        if schema is None:
            continue
        values = {arg.name: node.args[i] if i < len(node.args) else node.kwargs.get(arg.name, arg.default_value)
                  for i, arg in enumerate(schema.arguments)}
        rate = next((values[k] for k in _RATES if k in values), None)
        if any(k in values for k in _TRAINING_FLAGS):  # dropout(x, p, train), batch_norm(..., training, ...)
            training = any(values.get(k) is True for k in _TRAINING_FLAGS) and rate != 0
        else:  # scaled_dot_product_attention(..., dropout_p) has a rate only
            training = isinstance(rate, (int, float)) and rate > 0
        if training:
            found.add(schema.name.split("::")[-1])
    return sorted(found)


def _static_batch(graph_module: torch.fx.GraphModule) -> int | None:
    """The first input's batch size when it was fixed at export time, else ``None``."""
    for node in graph_module.graph.nodes:
        if node.op != "placeholder":
            continue
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor) and val.dim() > 0:
            return val.shape[0] if isinstance(val.shape[0], int) else None
    return None


def _is_exported_module(obj: Any) -> bool:
    """A module made by ``ExportedProgram.module()``: a GraphModule whose ``eval``/``train`` torch
    replaced, on the instance, with functions that raise."""
    return isinstance(obj, torch.fx.GraphModule) and ("eval" in vars(obj) or "train" in vars(obj))


class _ExportedFn:
    """Calls the module of an exported program, with its input checks turned into pellucid errors.

    ``program`` is the ``ExportedProgram`` when pellucid had it (``None`` when given ``.module()``).
    """

    def __init__(self, module: torch.fx.GraphModule, program: Any, name: str) -> None:
        self.module, self.program, self.name = module, program, name
        self.static_batch = _static_batch(module)

    def check_mode(self, eval_mode: bool) -> None:
        """Refuse a program exported in training mode unless ``eval_mode`` is off."""
        ops = _training_ops(self.module) if eval_mode else []
        if ops:
            raise ModelError(
                f"{self.name} was exported in training mode (it runs {', '.join(ops)} as in "
                "training, so each row's output would depend on chance or on the other rows of "
                "its batch), and an exported program cannot be switched to eval mode. Call "
                "model.eval() before torch.export.export, or pass eval_mode=False to explain it "
                "as exported"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        k = self.static_batch
        if k is not None and first is not None and first.dim() > 0 and first.shape[0] != k:
            raise ModelError(
                f"{self.name} was exported with a static batch size of {k}, so it takes exactly "
                f"{k} row(s) per call, but pellucid runs rows, path points and samples in batches "
                f"of other sizes ({first.shape[0]} here). Export it with a dynamic batch "
                "dimension: torch.export.export(model, (x,), "
                "dynamic_shapes=({0: torch.export.Dim('batch')},))"
            )
        try:
            return self.module(*args, **kwargs)
        except AssertionError as err:  # torch.export's input guards: "Guard failed: x.size()[1] == 1"
            shapes = [tuple(a.shape[1:]) for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
            raise InputError(
                f"{self.name} refused inputs with rows shaped {', '.join(map(str, shapes))}: {err}. "
                "An exported program only takes the shapes it was exported for; give inputs "
                "shaped like the example it was exported with (or export it with those dimensions "
                "dynamic: torch.export.Dim)"
            ) from err


def _exported(program: Any, *, name: str | None = None, batch_size: int | None = None) -> Model:
    """A :class:`Model` around an ``ExportedProgram`` or its ``.module()``, mode not checked."""
    if isinstance(program, torch.export.ExportedProgram):
        module, source = program.module(), program
    elif _is_exported_module(program):
        module, source = program, None
    else:
        raise ModelError(f"expected an ExportedProgram or its .module(), got {type(program).__name__}")
    name = name or ("ExportedProgram" if source is not None else "exported module")
    # eval_mode=False: such a module refuses eval() and train() (its mode is in its graph); the
    # state-restoring context still freezes and restores its parameters and hooks.
    return Model(_ExportedFn(module, source, name), module=module, eval_mode=False, batch_size=batch_size,
                 name=name)


def exported_model(program: Any, *, batch_size: int | None = None) -> Model:
    """A differentiable :class:`Model` around a ``torch.export`` program: an ``ExportedProgram``,
    its ``.module()``, or the path of a ``.pt2`` file saved with ``torch.export.save``.

    Export the model in eval mode and with a dynamic batch dimension; anything else is refused
    with that fix (see :mod:`pellucid.adapters`).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()
        >>> batch = torch.export.Dim("batch")
        >>> program = torch.export.export(net, (torch.zeros(2, 3),), dynamic_shapes=({0: batch},))
        >>> m = exported_model(program)
        >>> m.differentiable, m.outputs(torch.zeros(5, 3)).shape
        (True, torch.Size([5, 2]))
    """
    if isinstance(program, (str, os.PathLike)):
        model = _exported(_load_exported(Path(program)), name=Path(program).name, batch_size=batch_size)
    else:
        model = _exported(program, batch_size=batch_size)
    model.fn.check_mode(True)
    return model


def _is_pt2_archive(path: Path) -> bool:
    """Whether ``path`` is a PT2 archive (torch.export.save), told from a TorchScript or state-dict
    zip by its ``archive_format`` entry."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.rsplit("/", 1)[-1] == "archive_format" for n in archive.namelist())


def _load_exported(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"no model file at {path}")
    if not _is_pt2_archive(path):
        raise ModelError(f"{path} is not a program saved with torch.export.save (no PT2 archive); "
                         "export the model with torch.export.export and save it with "
                         "torch.export.save, or pass a TorchScript file or the module itself")
    try:
        return torch.export.load(str(path))
    except Exception as err:  # torch raises RuntimeError, KeyError or its own errors
        raise ModelError(
            f"{path} could not be loaded with torch.export.load ({err}). pellucid reads programs "
            "saved with torch.export.save; an AOTInductor package is compiled code without "
            "gradients (load it with torch._inductor.aoti_load_package and explain the function "
            "it returns with a model-agnostic method)"
        ) from err
