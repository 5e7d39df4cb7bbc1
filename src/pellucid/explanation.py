"""``Explanation``: the one result every method returns and every consumer reads.

Slicing keeps the batch dimension (``expl[3]`` is a one-row explanation), so plots, metrics and
the report always see ``(n, ...)`` tensors. ``save``/``load`` write a single ``.npz`` holding the
arrays and a JSON header (format version, method, params, meta); nothing is pickled and the
model is never stored.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import FormatError, PellucidError

__all__ = ["Explanation", "FORMAT_VERSION"]

#: Version of the file layout written by :meth:`Explanation.save`.
FORMAT_VERSION = 1

_ARRAY_FIELDS = ("values", "inputs", "target", "outputs", "baseline_outputs")
_KINDS = (None, "image", "tabular", "text", "sequence")


@dataclasses.dataclass
class Explanation:
    """Attributions for a batch of rows, with everything needed to read, check and redraw them.

    Attributes:
        values: attributions shaped like the inputs (or like the CAM map / feature groups).
        inputs: the rows explained.
        target: the explained output index, one per row (LongTensor).
        outputs: the model's explained output at ``inputs``, one per row.
        baseline_outputs: for additive methods, the output at the baseline (or its expectation
            over a background); ``None`` for methods that are not additive.
        method, params: the registry name of the method and every option it used.
        feature_names: optional names of the features (tabular columns, tokens).
        kind: ``"image"``, ``"tabular"``, ``"text"`` or ``"sequence"`` (guides plotting).
        meta: model evaluations, wall time and other figures the method reports about the run.
        per_row: further tensors with one entry per row (Shapley standard errors, LIME's
            intercepts and fit, occlusion's group values); sliced, moved and saved with the rows.
    """

    values: torch.Tensor
    inputs: torch.Tensor
    target: torch.Tensor
    outputs: torch.Tensor
    baseline_outputs: torch.Tensor | None = None
    method: str = ""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    feature_names: list[str] | None = None
    kind: str | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    per_row: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise PellucidError(f"kind must be one of {_KINDS[1:]} or None, got {self.kind!r}")
        if self.kind is None:
            self.kind = _guess_kind(self.inputs)
        for key, value in self.per_row.items():
            if not isinstance(value, torch.Tensor) or value.dim() == 0 or len(value) != len(self):
                raise PellucidError(
                    f"per_row[{key!r}] must be a tensor with one entry per row ({len(self)}), got "
                    f"{type(value).__name__} of shape {tuple(getattr(value, 'shape', ()))}")

    # -- rows -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, index: int | slice | torch.Tensor | list) -> Explanation:
        """Rows ``index`` as a new Explanation; an int keeps the batch dimension (one row)."""
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"row {i} out of range for an explanation of {len(self)} rows")
            index = slice(i % len(self), i % len(self) + 1)
        pick = {
            name: (getattr(self, name)[index] if getattr(self, name) is not None else None)
            for name in _ARRAY_FIELDS
        }
        return dataclasses.replace(self, **pick, params=dict(self.params), meta=dict(self.meta),
                                   per_row={k: v[index] for k, v in self.per_row.items()})

    # -- derived --------------------------------------------------------------------------------
    @property
    def delta(self) -> torch.Tensor:
        """Completeness gap per row: ``sum(values) - (outputs - baseline_outputs)``.

        Zero for an exact additive attribution (IG with infinitely many steps, exact Shapley).
        """
        if self.baseline_outputs is None:
            raise PellucidError(
                f"{self.method or 'this method'} is not additive (no baseline_outputs), so it "
                "has no completeness delta"
            )
        total = self.values.reshape(len(self), -1).sum(dim=1)
        return total - (self.outputs - self.baseline_outputs)

    def numpy(self) -> np.ndarray:
        """The values as a numpy array (on the CPU)."""
        return self.values.detach().cpu().numpy()

    def to(self, device: torch.device | str) -> Explanation:
        """A copy with every tensor moved to ``device``."""
        moved = {
            name: (getattr(self, name).to(device) if getattr(self, name) is not None else None)
            for name in _ARRAY_FIELDS
        }
        return dataclasses.replace(self, **moved, per_row={k: v.to(device) for k, v in self.per_row.items()})

    def plot(self, index: int = 0, **kwargs: Any):
        """Draw row ``index`` with the plot that fits ``kind``; returns a matplotlib Figure."""
        from . import plot

        return plot.explanation(self, index=index, **kwargs)

    def __repr__(self) -> str:
        return (
            f"Explanation(method={self.method!r}, rows={len(self)}, "
            f"values={tuple(self.values.shape)}, kind={self.kind!r})"
        )

    # -- files ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write a ``.npz`` (arrays plus a JSON header); returns the path written.

        Tensors inside ``params`` or ``meta`` (a baseline, say) are stored as arrays too.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        arrays: dict[str, np.ndarray] = {}
        for name in _ARRAY_FIELDS:
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value.detach().cpu().numpy()
        header = {
            "format": "pellucid.Explanation",
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "kind": self.kind,
            "feature_names": self.feature_names,
            "params": _encode(self.params, arrays, "params"),
            "meta": _encode(self.meta, arrays, "meta"),
            "per_row": _encode(self.per_row, arrays, "per_row"),
        }
        arrays["__header__"] = np.array(json.dumps(header))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: torch.device | str = "cpu") -> Explanation:
        """Read a file written by :meth:`save` (no pickle is involved)."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError) as err:
            raise FormatError(f"{path} is not a readable pellucid explanation file: {err}") from err
        if "__header__" not in arrays:
            raise FormatError(f"{path} has no pellucid header; was it written by Explanation.save?")
        header = json.loads(str(arrays.pop("__header__")))
        if header.get("format") != "pellucid.Explanation":
            raise FormatError(f"{path} is not a pellucid explanation file")
        if header.get("format_version", 0) > FORMAT_VERSION:
            raise FormatError(
                f"{path} was written in format version {header['format_version']}, newer than "
                f"this pellucid reads ({FORMAT_VERSION}); upgrade pellucid"
            )
        fields = {
            name: (torch.from_numpy(arrays[name]).to(device) if name in arrays else None)
            for name in _ARRAY_FIELDS
        }
        return cls(
            **fields,
            method=header["method"],
            params=_decode(header["params"], arrays, device),
            feature_names=header["feature_names"],
            kind=header["kind"],
            meta=_decode(header["meta"], arrays, device),
            per_row=_decode(header.get("per_row", {}), arrays, device),
        )


def _guess_kind(inputs: torch.Tensor) -> str | None:
    if inputs.dim() == 4 or (inputs.dim() == 3 and inputs.shape[1] in (1, 3, 4)):
        return "image"
    if inputs.dim() == 2:
        return "text" if not inputs.is_floating_point() else "tabular"
    if inputs.dim() == 3:
        return "sequence"
    return None


def _encode(obj: Any, arrays: dict[str, np.ndarray], key: str) -> Any:
    """JSON-safe copy of ``obj``; tensors and arrays move into ``arrays`` under ``key``."""
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        arr = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else obj
        arrays[key] = arr
        return {"__array__": key, "torch": isinstance(obj, torch.Tensor)}
    if isinstance(obj, dict):
        return {str(k): _encode(v, arrays, f"{key}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays, f"{key}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)  # modules, callables: described, never stored


def _decode(obj: Any, arrays: dict[str, np.ndarray], device: torch.device | str) -> Any:
    if isinstance(obj, dict):
        if "__array__" in obj:
            arr = arrays[obj["__array__"]]
            return torch.from_numpy(arr).to(device) if obj.get("torch") else arr
        return {k: _decode(v, arrays, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays, device) for v in obj]
    return obj
