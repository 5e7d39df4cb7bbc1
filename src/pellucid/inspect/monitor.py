"""``inspect.Monitor``: explain the same probe inputs while a model trains (the seeds' "automatic
explanation").

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
import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._common import check_positive_int
from .._deprecation import rename_keywords, warn
from ..errors import InputError, ModelError
from ..registry import get
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
    """Explain ``inputs`` with ``methods`` every ``every`` steps of training.

    Args:
        model: the ``nn.Module`` being trained.
        inputs: a fixed batch of probe rows to explain at each recorded step (a few rows).
        target: the explained class (int or one per row); ``None`` follows the model's prediction,
            which may change as it trains — pass the labels to watch one class.
        methods: registry names (``"saliency"``, ``"integrated_gradients"``, ...).
        every: record when ``step % every == 0``.
        logdir: also write each snapshot to TensorBoard there.
        layers: layers whose activation statistics are recorded (needs ``pellucid.features``).
        params: extra keyword arguments for every method that accepts them (``steps=16`` for IG).

    ``probe_inputs=`` is the old name of ``inputs`` (deprecated).

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
        self, model: nn.Module, inputs: Any = None, *, target: Any = None,
        methods: Sequence[str] = ("saliency",), every: int = 1, logdir: Any = None,
        layers: Sequence[str] | None = None, **params: Any,
    ) -> None:
        params = rename_keywords("Monitor", params, {"probe_inputs": "inputs"})
        if "inputs" in params:
            if inputs is not None:
                raise InputError("Monitor() got both inputs and its old name probe_inputs; give inputs only")
            inputs = params.pop("inputs")
        if not isinstance(model, nn.Module):
            raise ModelError(f"Monitor needs a torch.nn.Module, got {type(model).__name__}")
        if inputs is None:
            raise InputError("Monitor needs inputs: a fixed batch of rows to explain while training")
        every = check_positive_int(every, "every")
        if isinstance(methods, str):
            methods = (methods,)
        if not methods:
            raise InputError("methods must name at least one explanation method")
        for name in methods:
            get(name)  # unknown names fail here, not in the middle of training
        self.model, self.methods, self.every = model, tuple(methods), every
        self.inputs = torch.as_tensor(inputs).detach().clone()
        self.target, self.layers, self.params = target, tuple(layers or ()), params
        self.history: list[Snapshot] = []
        self._writer = None
        if logdir is not None:
            from .tensorboard import summary_writer

            self._writer = summary_writer(logdir)

    @property
    def probe_inputs(self) -> torch.Tensor:
        """Deprecated name of :attr:`inputs`."""
        warn("Monitor.probe_inputs is deprecated and will be removed in the next release; use Monitor.inputs")
        return self.inputs

    def step(self, step: int) -> bool:
        """Record a snapshot when ``step`` is a multiple of ``every``; returns whether it did."""
        if step % self.every:
            return False
        expls = {name: get(name).function(self.model, self.inputs, target=self.target, **self._params(name))
                 for name in self.methods}
        acts = None
        if self.layers:
            from ..features import activation_stats

            acts = activation_stats(self.model, self.inputs, layers=list(self.layers))
        snap = Snapshot(step, expls, weights(self.model), acts)
        self.history.append(snap)
        if self._writer is not None:
            from .tensorboard import write_step

            write_step(self._writer, self.model, step, expls.values())
            self._writer.flush()
        return True

    def _params(self, name: str) -> dict[str, Any]:
        accepted = inspect.signature(get(name).function).parameters
        return {k: v for k, v in self.params.items() if k in accepted}

    def explanations(self, method: str | None = None) -> dict[int, Any]:
        """``{step: Explanation}`` of ``method`` (default: the first monitored) at each recorded step."""
        if not self.history:
            raise InputError("nothing recorded yet: call monitor.step(i) in the training loop")
        method = method or self.methods[0]
        if method not in self.methods:
            raise InputError(f"{method!r} is not monitored; the methods are {list(self.methods)}")
        return {s.step: s.explanations[method] for s in self.history}

    def maps(self, method: str | None = None) -> torch.Tensor:
        """The recorded attributions of ``method``, stacked: shape (steps, rows, *input_shape)."""
        return torch.stack([e.values for e in self.explanations(method).values()])

    def table(self) -> list[dict[str, Any]]:
        """One dictionary per recorded step: the step, and per method the mean |attribution|."""
        return [{"step": s.step, **{f"{name} mean |value|": float(e.values.abs().mean())
                                    for name, e in s.explanations.items()}}
                for s in self.history]

    def plot(self, method: str | None = None, **kwargs: Any) -> Any:
        """Time strip of ``method``'s maps: one row per probe input (``rows=4`` at most), one column
        per recorded step (:func:`pellucid.plot.inspect.monitor_strip`)."""
        from ..plot import inspect as _plots

        return _plots.monitor_strip(self, method, **kwargs)

    def close(self) -> None:
        """Flush and close the TensorBoard writer, if any."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
