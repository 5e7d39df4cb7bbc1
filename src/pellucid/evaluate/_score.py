"""``Score``: what every metric in ``pellucid.evaluate`` returns."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .._table import text_table

__all__ = ["Score"]

#: Rows ``str(score)`` shows before it says how many more there are.
_SHOWN = 20


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

    def table(self) -> list[dict[str, Any]]:
        """One dict per row: ``{"row": i, name: value}``, plus every per-row tensor of ``meta``
        (completeness' ``passed``, for one)."""
        n = len(self.values)
        extra = {k: v.detach().cpu().tolist() for k, v in self.meta.items()
                 if isinstance(v, torch.Tensor) and v.dim() == 1 and len(v) == n}
        values = self.values.detach().cpu().double().tolist()
        return [{"row": i, self.name: values[i], **{k: v[i] for k, v in extra.items()}}
                for i in range(n)]

    def plot(self, **kwargs: Any) -> Any:
        """The curves (each row and their mean) where the metric has them, else the per-row
        values; :func:`pellucid.plot.evaluate.score`."""
        from ..plot import evaluate as _plots
        return _plots.score(self, **kwargs)

    def __repr__(self) -> str:
        arrow = "↑" if self.higher_is_better else "↓"
        return f"Score({self.name}{arrow}, mean={self.mean:.4g}, rows={len(self.values)})"

    def __str__(self) -> str:
        rows = self.table()
        text = text_table(rows[:_SHOWN], title=repr(self))
        return text + (f"\n... {len(rows) - _SHOWN} more rows" if len(rows) > _SHOWN else "")
