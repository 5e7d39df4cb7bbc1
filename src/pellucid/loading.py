"""Read models and data from files, for the ``pellucid`` command (and anyone scripting it).

Models: an ``.onnx`` file (onnxruntime), a ``torch.export`` program (``.pt2``, saved with
``torch.export.save``), a TorchScript file (``.pt``/``.pth``/``.ts``, saved with
``torch.jit.save``), or ``package.module:function`` naming a function that returns the model (or
a tuple whose first item is the model, as the zoo's loaders do).

Data: ``.npy``; ``.npz`` (the array named ``key``, or the only/first one); ``.csv`` (a header row
of names is detected and kept as feature names; numeric cells only); ``.parquet`` (needs pandas
with pyarrow); a folder of PNG/JPEG images (all the same size; scaled to [0, 1], laid out
(n, C, H, W), grey images with one channel).
"""
from __future__ import annotations

import csv
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import InputError, ModelError

__all__ = ["load_model", "load_data"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_model(spec: str) -> Any:
    """The model named by ``spec``: a file path (``.onnx``, ``.pt2``, TorchScript) or
    ``module:function``."""
    path = Path(spec).expanduser()
    if path.exists():
        from .adapters import wrap

        return wrap(str(path))
    if ":" in spec and not spec.startswith((".", "/")):
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ModelError(f"cannot import {module_name!r} for --model {spec!r}: {err}") from err
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise ModelError(f"{module_name!r} has no function {attr!r} (from --model {spec!r})")
        model = factory()
        return model[0] if isinstance(model, tuple) else model
    raise ModelError(f"model file not found: {spec} (give an .onnx, .pt2 (torch.export) or "
                     "TorchScript file, or module:function returning a model)")


def load_data(path: str | Path, *, key: str | None = None) -> tuple[torch.Tensor, list[str] | None]:
    """``(rows, feature_names)`` read from ``path`` (names only for tables with a header)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"data file not found: {path}")
    if path.is_dir():
        return _images(path), None
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return _tensor(np.load(path, allow_pickle=False), path), None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.keys())
                if not names:
                    raise InputError(f"{path} holds no arrays")
                if key is not None and key not in names:
                    raise InputError(f"{path} has no array {key!r}; it has {names}")
                return _tensor(archive[key or names[0]], path), None
        if suffix == ".csv":
            return _csv(path)
        if suffix == ".parquet":
            try:
                import pandas as pd
                frame = pd.read_parquet(path)
            except ImportError as err:
                raise InputError(f"reading {path} needs pandas and pyarrow: {err}") from err
            return _tensor(frame.to_numpy(), path), [str(c) for c in frame.columns]
    except (ValueError, OSError) as err:
        raise InputError(f"cannot read {path}: {err}") from err
    raise InputError(f"unknown data format {suffix or '(no suffix)'} for {path}: pellucid reads "
                     ".npy, .npz, .csv, .parquet and folders of PNG/JPEG images")


def _tensor(array: np.ndarray, path: Path) -> torch.Tensor:
    if array.dtype.kind not in "fiub":
        raise InputError(f"{path} holds {array.dtype} values; pellucid needs numbers")
    if array.ndim == 0:
        raise InputError(f"{path} holds a single number; pellucid needs rows")
    out = torch.from_numpy(np.ascontiguousarray(array))
    return out.float() if out.dtype == torch.float64 or not out.is_floating_point() else out


def _csv(path: Path) -> tuple[torch.Tensor, list[str] | None]:
    with path.open(newline="") as handle:
        rows = [r for r in csv.reader(handle) if r]
    if not rows:
        raise InputError(f"{path} is empty")

    def numeric(row: list[str]) -> bool:
        try:
            [float(c) for c in row]
            return True
        except ValueError:
            return False

    names = None if numeric(rows[0]) else [c.strip() for c in rows[0]]
    body = rows[1:] if names else rows
    width = len(rows[0])
    for i, r in enumerate(body, start=2 if names else 1):
        if len(r) != width:
            raise InputError(f"{path} line {i} has {len(r)} cells, the first row has {width}")
        if not numeric(r):
            raise InputError(f"{path} line {i} has a cell that is not a number: {r}")
    if not body:
        raise InputError(f"{path} has a header but no rows")
    return torch.tensor([[float(c) for c in r] for r in body], dtype=torch.float32), names


def _images(folder: Path) -> torch.Tensor:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder} holds no PNG or JPEG images")
    arrays = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("L") if im.mode in ("L", "LA", "I", "I;16", "1") else im.convert("RGB")
            a = np.asarray(im, dtype=np.float32) / 255.0
        arrays.append(a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InputError(f"the images in {folder} differ in size ({sorted(shapes)}); resize them first")
    return torch.from_numpy(np.stack(arrays))
