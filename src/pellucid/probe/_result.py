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

    def plot(self, rows: Any = None, *, n: int = 6) -> Any:
        """Clean input, perturbation and adversarial input side by side, with the predictions.

        ``rows``: which rows (default: the first ``n``). Image rows (C, H, W) are drawn as
        pictures, the perturbation on a diverging map centred on zero (red raised a pixel, blue
        lowered it); other rows as bars of the perturbation. Returns a matplotlib ``Figure``.
        """
        import numpy as np
        from matplotlib.figure import Figure

        from ..plot.image import input_picture

        if self.inputs is None:
            raise ValueError("this result does not hold its clean inputs, so it cannot be drawn")
        rows = list(range(min(n, len(self)))) if rows is None else list(rows)
        image = self.inputs.dim() in (3, 4)
        fig = Figure(figsize=(6.0 if image else 7.0, (1.9 if image else 1.6) * len(rows) + 0.4),
                     layout="constrained")
        axes = fig.subplots(len(rows), 3 if image else 1, squeeze=False)
        for k, i in enumerate(rows):
            x = self.inputs[i].detach().cpu().double().numpy()
            adv = self.adversarial[i].detach().cpu().double().numpy()
            delta = adv - x
            verdict = "success" if bool(self.success[i]) else "failed"
            if image:
                ax0, ax1, ax2 = axes[k]
                for ax, data, label in ((ax0, x, f"clean · pred {int(self.original_predictions[i])}"),
                                        (ax2, adv, f"adversarial · pred {int(self.predictions[i])}")):
                    pic, rgb = input_picture(data if data.ndim == 3 else data[None])
                    ax.imshow(pic, cmap=None if rgb else "gray_r", vmin=0, vmax=1, interpolation="nearest")
                    ax.set_title(label, fontsize=8)
                d = delta.sum(axis=0) if delta.ndim == 3 else delta
                lim = float(np.abs(d).max()) or 1.0
                ax1.imshow(d, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
                ax1.set_title(f"perturbation · {verdict}\n" + ", ".join(
                    f"{k2} {float(v[i]):.3g}" for k2, v in self.perturbation_norm.items()), fontsize=8)
                for ax in (ax0, ax1, ax2):
                    ax.set_xticks([])
                    ax.set_yticks([])
            else:
                ax = axes[k, 0]
                d = delta.ravel()
                ax.bar(np.arange(d.size), d, color=np.where(d >= 0, "#d6604d", "#4393c3"))
                ax.axhline(0, color="0.3", linewidth=0.7)
                ax.set_title(f"row {i}: pred {int(self.original_predictions[i])} -> "
                             f"{int(self.predictions[i])} ({verdict})", fontsize=8)
        fig.suptitle(f"{self.meta.get('attack', 'attack')}: success rate {self.success_rate:.0%}", fontsize=10)
        return fig

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
