"""``inspect.Monitor``: explain the same probe inputs while a model trains (the seeds' "automatic explanation").

Call ``monitor.step(i)`` from any training loop; every ``every`` steps it runs each method on the
probe inputs (in eval mode, the model's training flag and gradients restored afterwards, so the
training loop is not disturbed), takes weight statistics and — when ``layers`` are named —
activation statistics on the probe inputs, and keeps them in :attr:`Monitor.history`. With a
``logdir`` the same goes to TensorBoard. :meth:`Monitor.plot` draws the maps as a time strip
(probe rows × recorded steps), which :func:`pellucid.report` embeds.

Cost per recorded step: the methods' own cost on the probe inputs plus one pass over the weights.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from matplotlib.figure import Figure
from torch import nn

from ..errors import InputError, ModelError
from .weights import Weights, weights

__all__ = ["Monitor", "Snapshot"]


@dataclasses.dataclass
class Snapshot:
    """What :class:`Monitor` recorded at one step."""

    step: int
    explanations: dict[str, Any]
    weights: Weights
    activations: Any = None


class Monitor:
    """Explain ``probe_inputs`` with ``methods`` every ``every`` steps of training.

    Args:
        model: the ``nn.Module`` being trained.
        probe_inputs: a fixed batch to explain at each recorded step (a few rows).
        methods: registry names (``"saliency"``, ``"integrated_gradients"``, ...).
        every: record when ``step % every == 0``.
        target: the explained class (int or one per row); ``None`` follows the model's prediction,
            which may change as it trains — pass the labels to watch one class.
        logdir: also write each snapshot to TensorBoard there.
        layers: layers whose activation statistics are recorded (needs ``pellucid.features``).
        params: extra keyword arguments for every method (``steps=16`` for IG, ...).

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(4, 2)
        >>> mon = Monitor(net, torch.ones(2, 4), methods=("saliency",), every=2)
        >>> [mon.step(i) for i in range(4)]
        [True, False, True, False]
        >>> [s.step for s in mon.history]
        [0, 2]
    """

    def __init__(
        self, model: nn.Module, probe_inputs: Any, *, methods: Sequence[str] = ("saliency",),
        every: int = 1, target: Any = None, logdir: Any = None, layers: Sequence[str] | None = None,
        **params: Any,
    ) -> None:
        from ..registry import get

        if not isinstance(model, nn.Module):
            raise ModelError(f"Monitor needs a torch.nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InputError(f"every must be a positive integer, got {every!r}")
        if isinstance(methods, str):
            methods = (methods,)
        if not methods:
            raise InputError("methods must name at least one explanation method")
        for name in methods:
            get(name)  # unknown names fail here, not in the middle of training
        self.model, self.methods, self.every = model, tuple(methods), every
        self.probe_inputs = torch.as_tensor(probe_inputs).detach().clone()
        self.target, self.layers, self.params = target, tuple(layers or ()), params
        self.history: list[Snapshot] = []
        self._writer = None
        if logdir is not None:
            from .tensorboard import summary_writer

            self._writer = summary_writer(logdir)

    def step(self, step: int) -> bool:
        """Record a snapshot when ``step`` is a multiple of ``every``; returns whether it did."""
        if step % self.every:
            return False
        from ..registry import get

        expls = {name: get(name).function(self.model, self.probe_inputs, target=self.target, **self._params(name))
                 for name in self.methods}
        acts = None
        if self.layers:
            from ..features import activation_stats

            acts = activation_stats(self.model, self.probe_inputs, layers=list(self.layers))
        snap = Snapshot(step, expls, weights(self.model), acts)
        self.history.append(snap)
        if self._writer is not None:
            from .tensorboard import write_step

            write_step(self._writer, self.model, step, expls.values())
            self._writer.flush()
        return True

    def _params(self, name: str) -> dict[str, Any]:
        import inspect as _inspect

        from ..registry import get

        accepted = _inspect.signature(get(name).function).parameters
        return {k: v for k, v in self.params.items() if k in accepted}

    def maps(self, method: str | None = None) -> torch.Tensor:
        """The recorded attributions of ``method``, stacked: shape (steps, rows, *input_shape)."""
        method = self._method(method)
        return torch.stack([s.explanations[method].values for s in self.history])

    def _method(self, method: str | None) -> str:
        if not self.history:
            raise InputError("nothing recorded yet: call monitor.step(i) in the training loop")
        method = method or self.methods[0]
        if method not in self.methods:
            raise InputError(f"{method!r} is not monitored; the methods are {list(self.methods)}")
        return method

    def plot(self, method: str | None = None, *, rows: int = 4) -> Figure:
        """Time strip: one row per probe input, one column per recorded step."""
        from ..plot.image import draw
        from ..plot.tabular import draw_bars

        method = self._method(method)
        snaps = self.history
        n = min(rows, len(self.probe_inputs))
        fig = Figure(figsize=(1.6 * len(snaps) + 0.5, 1.6 * n + 0.5), layout="constrained")
        axes = fig.subplots(n, len(snaps), squeeze=False)
        for j, snap in enumerate(snaps):
            expl = snap.explanations[method]
            for i in range(n):
                title = f"step {snap.step}" if i == 0 else None
                if expl.kind == "image":
                    draw(axes[i, j], expl, i, title=title)
                else:
                    draw_bars(axes[i, j], expl, i, top=8, title=title)
        fig.suptitle(f"{method} over training", fontsize=10)
        return fig

    def close(self) -> None:
        """Flush and close the TensorBoard writer, if any."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
