"""Result types of :mod:`pellucid.probe`'s adversarial attacks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["AttackResult", "RobustnessCurve"]


@dataclass(eq=False)
class AttackResult:
    """What an adversarial attack produced, one entry per input row.

    ``adversarial`` the perturbed inputs; ``success`` (bool) whether the attack won on that row
    (untargeted: the prediction is no longer ``target``; targeted: it is ``target``);
    ``perturbation_norm`` a dict ``{"linf": (n,), "l2": (n,)}`` of ``adversarial - inputs``;
    ``predictions`` the argmax at the adversarial inputs; ``original_predictions`` the argmax at
    the clean inputs; ``target`` the class each row was attacked with respect to; ``meta`` the
    options used (eps, steps, seed, ...), model rows evaluated and wall time.
    """

    adversarial: torch.Tensor
    success: torch.Tensor
    perturbation_norm: dict[str, torch.Tensor]
    predictions: torch.Tensor
    original_predictions: torch.Tensor
    target: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.adversarial)

    @property
    def success_rate(self) -> float:
        """Fraction of rows on which the attack succeeded."""
        return float(self.success.float().mean())

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

    def plot(self, ax: Any = None, **line_kwargs: Any) -> Any:
        """Accuracy against eps as a matplotlib ``Figure`` (drawn on ``ax`` when given)."""
        if ax is None:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(4.5, 3.2), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        ax.plot(self.eps, self.accuracy, marker="o", **line_kwargs)
        ax.set_xlabel("eps")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"robustness to {self.attack}")
        ax.grid(True, alpha=0.3)
        return fig

    def __repr__(self) -> str:
        pairs = ", ".join(f"{e:g}: {a:.3f}" for e, a in zip(self.eps, self.accuracy))
        return f"RobustnessCurve({self.attack}, {{{pairs}}})"
