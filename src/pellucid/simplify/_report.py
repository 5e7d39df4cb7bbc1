"""Result types of :mod:`pellucid.simplify`: small dataclasses with a readable table and a plot.

Every report states the cost in accuracy honestly: ``accuracy_before``/``accuracy_after`` on the
labelled data the call was given (``None`` without labels), and ``agreement`` with the original
model on the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = ["PruneReport", "TrainReport", "QuantizeReport", "DistillReport", "table"]


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: numbers right-aligned, floats to 4 significant figures."""
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    def numeric(v: Any) -> bool:
        return isinstance(v, (int, float)) or (isinstance(v, str) and v.rstrip("%x").replace(".", "", 1).lstrip("-").isdigit())

    cells = [[fmt(v) for v in r] for r in rows]
    right = [bool(rows) and all(numeric(r[i]) or r[i] is None for r in rows) for i in range(len(header))]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    line = lambda r: "  ".join(  # noqa: E731
        c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
    ).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _new_axes(figsize: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


@dataclass(eq=False)
class PruneReport:
    """What :func:`~pellucid.simplify.prune` removed, layer by layer.

    ``layers`` holds one dict per pruned layer: ``name``, ``kind``, ``shape_before``,
    ``shape_after``, ``parameters`` (weights of the layer before pruning), ``removed`` (weights
    zeroed or cut), ``sparsity`` (zero share of the layer's weight after pruning; for structured
    pruning the share of output units removed). ``masks`` (unstructured only) maps parameter names
    of the pruned copy to 0/1 tensors, used by :func:`~pellucid.simplify.fine_tune`.
    """

    method: str
    layers: list[dict[str, Any]]
    parameters_before: int
    parameters_after: int
    nonzero_before: int
    nonzero_after: int
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    agreement: float | None = None
    masks: dict[str, Any] = field(default_factory=dict, repr=False)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def removed(self) -> int:
        """Weights removed: zeroed (unstructured) or cut from the tensors (structured)."""
        return sum(layer["removed"] for layer in self.layers)

    @property
    def sparsity(self) -> float:
        """Share of the pruned layers' weights that were removed."""
        total = sum(layer["parameters"] for layer in self.layers)
        return self.removed / total if total else 0.0

    def table(self) -> str:
        rows = [[l["name"], l["kind"], "x".join(map(str, l["shape_before"])),
                 "x".join(map(str, l["shape_after"])), l["parameters"], l["removed"],
                 f"{100 * l['sparsity']:.1f}%"] for l in self.layers]
        return table(["layer", "kind", "before", "after", "weights", "removed", "sparsity"], rows)

    def __str__(self) -> str:
        return (
            f"{self.method}: removed {self.removed} of {sum(l['parameters'] for l in self.layers)} "
            f"weights ({100 * self.sparsity:.1f}%); parameters {self.parameters_before} -> "
            f"{self.parameters_after}, non-zero {self.nonzero_before} -> {self.nonzero_after}\n"
            f"accuracy {_pct(self.accuracy_before)} -> {_pct(self.accuracy_after)}, "
            f"agreement with the original {_pct(self.agreement)}\n{self.table()}"
        )

    def __repr__(self) -> str:
        return (f"PruneReport({self.method}, sparsity={self.sparsity:.3f}, "
                f"accuracy {self.accuracy_before} -> {self.accuracy_after})")

    def plot(self) -> Any:
        """Share removed per layer, as horizontal bars (a matplotlib ``Figure``)."""
        import numpy as np

        fig, ax = _new_axes((6.0, 0.4 * len(self.layers) + 1.4))
        pos = np.arange(len(self.layers))[::-1]
        ax.barh(pos, [100 * l["sparsity"] for l in self.layers], color="#4393c3", height=0.7)
        ax.set_yticks(pos, [l["name"] for l in self.layers])
        ax.set_xlim(0, 100)
        ax.set_xlabel("removed (%)")
        acc = "" if self.accuracy_before is None else (
            f"\naccuracy {100 * self.accuracy_before:.1f}% → {100 * self.accuracy_after:.1f}%")
        ax.set_title(f"{self.method}{acc}", fontsize=10)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        return fig


@dataclass(eq=False)
class TrainReport:
    """A training run (``fine_tune``, ``train``): mean loss per epoch, accuracy before and after."""

    losses: list[float]
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return (f"{len(self.losses)} epochs, loss {self.losses[0]:.4g} -> {self.losses[-1]:.4g}; "
                f"accuracy {_pct(self.accuracy_before)} -> {_pct(self.accuracy_after)}")

    __repr__ = __str__

    def plot(self) -> Any:
        """Loss per epoch (a matplotlib ``Figure``)."""
        fig, ax = _new_axes((4.5, 3.2))
        ax.plot(range(1, len(self.losses) + 1), self.losses, marker="o")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean training loss")
        ax.grid(True, alpha=0.3)
        return fig


@dataclass(eq=False)
class QuantizeReport:
    """Sizes and cost of :func:`~pellucid.simplify.quantize`.

    ``size_before``/``size_after``: bytes of the serialised ``state_dict``; ``weight_bytes_before``
    /``weight_bytes_after``: bytes of the weights of the quantized layers alone (float32 against
    int8); ``layers``: the quantized layers' names; ``agreement``: share of rows predicted alike.
    """

    mode: str
    dtype: str
    layers: list[str]
    size_before: int
    size_after: int
    weight_bytes_before: int
    weight_bytes_after: int
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def compression(self) -> float:
        """How many times smaller the quantized layers' weights are."""
        return self.weight_bytes_before / max(1, self.weight_bytes_after)

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_before is None:
            return None
        return self.accuracy_before - self.accuracy_after

    def __str__(self) -> str:
        return (
            f"{self.mode} {self.dtype} quantization of {len(self.layers)} layer(s)\n"
            f"weights {self.weight_bytes_before} -> {self.weight_bytes_after} bytes "
            f"({self.compression:.2f}x smaller); state_dict {self.size_before} -> {self.size_after} bytes\n"
            f"accuracy {_pct(self.accuracy_before)} -> {_pct(self.accuracy_after)}, agreement "
            f"{_pct(self.agreement)}, largest output change {self.max_abs_diff if self.max_abs_diff is None else f'{self.max_abs_diff:.4g}'}"
        )

    def __repr__(self) -> str:
        return (f"QuantizeReport({self.mode} {self.dtype}, {self.compression:.2f}x, "
                f"agreement={self.agreement})")

    def plot(self) -> Any:
        """Weight bytes before and after, annotated with accuracy and agreement."""
        fig, ax = _new_axes((4.5, 3.2))
        ax.bar(["float32", self.dtype], [self.weight_bytes_before, self.weight_bytes_after],
               color=["#bdbdbd", "#4393c3"])
        ax.set_ylabel("bytes of quantized layers' weights")
        ax.set_title(f"{self.compression:.1f}x smaller · agreement {_pct(self.agreement)}")
        return fig


@dataclass(eq=False)
class DistillReport:
    """A distillation run: the student's fidelity to the teacher on held-out rows, and the cost.

    ``fidelity``: share of held-out rows where student and teacher predict the same class;
    ``teacher_accuracy``/``student_accuracy`` on held-out labelled rows (``None`` without labels).
    """

    fidelity: float
    teacher_parameters: int
    student_parameters: int
    losses: list[float]
    teacher_accuracy: float | None = None
    student_accuracy: float | None = None
    train_fidelity: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def compression(self) -> float:
        return self.teacher_parameters / max(1, self.student_parameters)

    def __str__(self) -> str:
        return (
            f"student with {self.student_parameters} parameters ({self.compression:.1f}x fewer than "
            f"the teacher's {self.teacher_parameters})\nfidelity to the teacher on held-out rows "
            f"{_pct(self.fidelity)} (training rows {_pct(self.train_fidelity)}); accuracy: teacher "
            f"{_pct(self.teacher_accuracy)}, student {_pct(self.student_accuracy)}"
        )

    def __repr__(self) -> str:
        return f"DistillReport(fidelity={self.fidelity:.4f}, compression={self.compression:.1f}x)"

    def plot(self) -> Any:
        """Training loss per epoch, titled with the held-out fidelity."""
        fig, ax = _new_axes((4.5, 3.2))
        ax.plot(range(1, len(self.losses) + 1), self.losses, marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel("distillation loss")
        ax.set_title(f"fidelity {_pct(self.fidelity)} · {self.compression:.1f}x fewer parameters")
        ax.grid(True, alpha=0.3)
        return fig
