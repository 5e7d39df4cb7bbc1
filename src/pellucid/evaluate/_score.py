"""``Score``: what every metric in ``pellucid.evaluate`` returns."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch


@dataclasses.dataclass
class Score:
    """Per-row scores of one metric on one explanation.

    Attributes:
        name: the metric's name (``"deletion_auc"``, ``"max_sensitivity"``, ...).
        values: one score per explained row, a 1-D tensor.
        higher_is_better: the direction in which the metric improves.
        curves: per-row curves where the metric has them (deletion/insertion: ``(n, steps+1)``;
            randomisation: ``(n, layers)``), else ``None``.
        meta: the metric's options and figures (model evaluations, seconds, seed used).
    """

    name: str
    values: torch.Tensor
    higher_is_better: bool
    curves: torch.Tensor | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def mean(self) -> float:
        """The mean over rows (NaN-rows ignored)."""
        return float(torch.nanmean(self.values.double()))

    def __repr__(self) -> str:
        arrow = "↑" if self.higher_is_better else "↓"
        return f"Score({self.name}{arrow}, mean={self.mean:.4g}, rows={len(self.values)})"
