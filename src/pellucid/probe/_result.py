"""Result types of :mod:`pellucid.probe`.

Every result keeps its numbers as tensors, gives them as rows of dictionaries through
``table()`` (what the report and pandas read) and as aligned text through ``str()``. Drawings
live in :mod:`pellucid.plot.probe`; a result's ``.plot()`` only calls into it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .._deprecation import renamed_attribute
from .._table import text_table
from ..errors import InputError

__all__ = [
    "AttackResult", "RobustnessCurve", "Counterfactuals", "InterventionResult", "AblationResult",
    "PatchResult", "NearestExamples",
]

#: ``str()`` of a result shows at most this many table rows.
_SHOWN = 20


def _text(title: str, rows: list[dict[str, Any]]) -> str:
    return text_table(rows, title=title, max_rows=_SHOWN)


# -- adversarial attacks ------------------------------------------------------------------------
@dataclass(eq=False)
class AttackResult:
    """What an adversarial attack produced, one entry per input row.

    ``adversarial`` the perturbed inputs; ``success`` (bool) whether the attack won on that row
    (untargeted: the prediction is no longer ``target``; targeted: it is ``target``);
    ``perturbation_norm`` a dict ``{"linf": (n,), "l2": (n,)}`` of ``adversarial - inputs``;
    ``predictions`` the argmax at the adversarial inputs; ``original_predictions`` the argmax at
    the clean inputs; ``target`` the class each row was attacked with respect to; ``meta`` the
    options used (eps, steps, seed, ...), model rows evaluated and wall time; ``inputs`` the clean
    rows (for :meth:`plot`).
    """

    adversarial: torch.Tensor
    success: torch.Tensor
    perturbation_norm: dict[str, torch.Tensor]
    predictions: torch.Tensor
    original_predictions: torch.Tensor
    target: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    inputs: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.adversarial)

    @property
    def success_rate(self) -> float:
        """Fraction of rows on which the attack succeeded."""
        return float(self.success.float().mean())

    def table(self) -> list[dict[str, Any]]:
        """One row per input: target, prediction before and after, success and the norms."""
        norms = {k: v.tolist() for k, v in self.perturbation_norm.items()}
        return [{"row": i, "target": t, "prediction": p0, "adversarial_prediction": p,
                 "success": s, **{k: v[i] for k, v in norms.items()}}
                for i, (t, p0, p, s) in enumerate(zip(self.target.tolist(),
                                                      self.original_predictions.tolist(),
                                                      self.predictions.tolist(),
                                                      self.success.tolist()))]

    def plot(self, **kwargs: Any) -> Any:
        """:func:`pellucid.plot.probe.attack`: clean, perturbation and adversarial side by side."""
        from ..plot import probe as _plots

        return _plots.attack(self, **kwargs)

    def __str__(self) -> str:
        return _text(f"{self.meta.get('attack', 'attack')}: success rate {self.success_rate:.1%} "
                     f"on {len(self)} row(s)", self.table())

    def __repr__(self) -> str:
        return (
            f"AttackResult({self.meta.get('attack', 'attack')}, n={len(self)}, "
            f"eps={self.meta.get('eps')}, success_rate={self.success_rate:.3f})"
        )


@dataclass(eq=False)
class RobustnessCurve:
    """Accuracy of a model under an attack of growing strength ``eps``."""

    eps: list[float]
    accuracy: list[float]
    attack: str
    params: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """``[{eps, accuracy}]``, one row per attack strength."""
        return [{"eps": e, "accuracy": a} for e, a in zip(self.eps, self.accuracy)]

    def plot(self, **kwargs: Any) -> Any:
        """:func:`pellucid.plot.probe.robustness_curve`: accuracy against eps."""
        from ..plot import probe as _plots

        return _plots.robustness_curve(self, **kwargs)

    def __str__(self) -> str:
        return _text(f"robustness to {self.attack} on {self.meta.get('n', '?')} row(s)", self.table())

    def __repr__(self) -> str:
        pairs = ", ".join(f"{e:g}: {a:.3f}" for e, a in zip(self.eps, self.accuracy))
        return f"RobustnessCurve({self.attack}, {{{pairs}}})"


# -- counterfactuals ----------------------------------------------------------------------------
@dataclass(eq=False)
class Counterfactuals:
    """Counterfactuals for each row of ``inputs``.

    ``inputs`` the original rows ``(n, d)``; ``candidates`` ``(n, k, d)``; ``reached`` ``(n, k)``
    whether the model predicts ``target`` at the candidate; ``distance`` ``(n, k)`` the scaled
    L1/L2 distance to the row; ``changed`` ``(n, k, d)`` the features with ``|x' - x| > tol``;
    ``target`` ``(n,)`` the wanted class; ``predictions`` ``(n, k)`` the model's class at each
    candidate; ``meta`` the options used, the steps run and wall time.
    """

    inputs: torch.Tensor
    candidates: torch.Tensor
    reached: torch.Tensor
    distance: torch.Tensor
    changed: torch.Tensor
    target: torch.Tensor
    predictions: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.inputs)

    x = renamed_attribute("inputs")  # deprecated names of ``inputs`` and ``target``
    desired = renamed_attribute("target")

    @property
    def reached_rate(self) -> float:
        """Fraction of rows with at least one candidate that reached the target class."""
        return float(self.reached.any(dim=1).float().mean())

    def table(self, feature_names: Sequence[str] | None = None, row: int = 0,
              candidate: int = 0) -> list[dict[str, Any]]:
        """The changed features of one row's candidate: ``[{feature, original, counterfactual}]``."""
        n, k, d = self.candidates.shape
        if not (isinstance(row, int) and -n <= row < n):
            raise InputError(f"row {row!r} is out of range for {n} row(s)")
        if not (isinstance(candidate, int) and -k <= candidate < k):
            raise InputError(f"candidate {candidate!r} is out of range for k={k}")
        if feature_names is not None and len(feature_names) != d:
            raise InputError(f"feature_names has {len(feature_names)} names for {d} features")
        return [{"feature": feature_names[j] if feature_names is not None else j,
                 "original": float(self.inputs[row, j]),
                 "counterfactual": float(self.candidates[row, candidate, j])}
                for j in torch.nonzero(self.changed[row, candidate]).flatten().tolist()]

    def __str__(self) -> str:
        n, k, _ = self.candidates.shape
        return _text(f"counterfactuals: {n} row(s) x {k} candidate(s), reached rate "
                     f"{self.reached_rate:.1%}; row 0, candidate 0 changes:", self.table())

    def __repr__(self) -> str:
        n, k, _ = self.candidates.shape
        return f"Counterfactuals(n={n}, k={k}, reached_rate={self.reached_rate:.3f})"


# -- interventions ------------------------------------------------------------------------------
def _before_after(result: Any) -> list[dict[str, Any]]:
    return [{"row": i, "target": t, "before": b, "after": a, "effect": e}
            for i, (t, b, a, e) in enumerate(zip(result.target.tolist(), result.before.tolist(),
                                                 result.after.tolist(), result.effect.tolist()))]


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

    def table(self) -> list[dict[str, Any]]:
        """``[{row, target, before, after, effect}]``, one row per input."""
        return _before_after(self)

    def __str__(self) -> str:
        return _text(f"do({self.do}): mean effect {self.mean_effect:.4g} ± {self.stderr:.2g}",
                     self.table())

    def __repr__(self) -> str:
        return (f"InterventionResult(rows={len(self.effect)}, do={self.do}, "
                f"mean_effect={self.mean_effect:.6g} ± {self.stderr:.2g})")


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

    def table(self) -> list[dict[str, Any]]:
        """``[{row, target, before, after, effect}]``, one row per input."""
        return _before_after(self)

    def __str__(self) -> str:
        return _text(f"ablation of units {self.units.tolist()} of {self.layer!r} (value "
                     f"{self.value!r}): mean effect {self.mean_effect:.4g}", self.table())

    def __repr__(self) -> str:
        return (f"AblationResult(rows={len(self.effect)}, layer={self.layer!r}, "
                f"units={self.units.tolist()}, value={self.value!r}, mean_effect={self.mean_effect:.6g})")


@dataclass
class PatchResult:
    """Activation patching, per row: the target's output at the inputs (``outputs``), at the
    baseline (``baseline_outputs``) and at the baseline with the units patched (``patched``);
    ``restored = (patched - baseline_outputs) / (outputs - baseline_outputs)`` (NaN where the two
    are equal)."""

    outputs: torch.Tensor
    baseline_outputs: torch.Tensor
    patched: torch.Tensor
    restored: torch.Tensor
    target: torch.Tensor
    layer: str
    units: torch.Tensor | None

    clean = renamed_attribute("outputs")  # deprecated names of ``outputs`` and ``baseline_outputs``
    corrupt = renamed_attribute("baseline_outputs")

    @property
    def mean_restored(self) -> float:
        """Mean of ``restored`` over the rows where it is defined (NaN if none)."""
        r = self.restored[~torch.isnan(self.restored)]
        return float(r.double().mean()) if len(r) else float("nan")

    def table(self) -> list[dict[str, Any]]:
        """``[{row, target, outputs, baseline_outputs, patched, restored}]``, one row per input."""
        cols = (self.target, self.outputs, self.baseline_outputs, self.patched, self.restored)
        return [{"row": i, "target": t, "outputs": o, "baseline_outputs": b, "patched": p, "restored": r}
                for i, (t, o, b, p, r) in enumerate(zip(*(c.tolist() for c in cols)))]

    def __str__(self) -> str:
        units = "all units" if self.units is None else f"units {self.units.tolist()}"
        return _text(f"patching {units} of {self.layer!r}: mean restored {self.mean_restored:.4g}",
                     self.table())

    def __repr__(self) -> str:
        units = "all" if self.units is None else self.units.tolist()
        return (f"PatchResult(rows={len(self.restored)}, layer={self.layer!r}, units={units}, "
                f"mean_restored={self.mean_restored:.4g})")


# -- examples -----------------------------------------------------------------------------------
@dataclass
class NearestExamples:
    """For each input row, the ``k`` nearest rows of the data: ``indices`` and ``distances``
    shaped ``(n_inputs, k)``, nearest first; ``labels`` of those rows when labels were given."""

    indices: torch.Tensor
    distances: torch.Tensor
    labels: torch.Tensor | None
    layer: str
    metric: str

    def table(self) -> list[dict[str, Any]]:
        """``[{row, rank, example, distance(, label)}]``: ``k`` rows per input, nearest first."""
        labels = self.labels.tolist() if self.labels is not None else None
        return [{"row": i, "rank": r, "example": idx, "distance": d,
                 **({"label": labels[i][r]} if labels is not None else {})}
                for i, (ids, ds) in enumerate(zip(self.indices.tolist(), self.distances.tolist()))
                for r, (idx, d) in enumerate(zip(ids, ds))]

    def __str__(self) -> str:
        return _text(f"nearest examples in {self.layer!r} ({self.metric})", self.table())

    def __repr__(self) -> str:
        q, k = self.indices.shape
        return f"NearestExamples(inputs={q}, k={k}, layer={self.layer!r}, metric={self.metric!r})"
