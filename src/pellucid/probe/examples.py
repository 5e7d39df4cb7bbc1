"""Example-based explanation: the training rows nearest to a query in a layer's representation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, LayerError
from ..model import Model
from ..adapters import wrap
from .intervention import _HookAbort, forward_hook, layer_name

__all__ = ["nearest_examples", "NearestExamples"]


@dataclass
class NearestExamples:
    """For each query, the ``k`` nearest dataset rows: ``indices`` and ``distances`` shaped
    ``(n_queries, k)``, nearest first; ``labels`` of those rows when labels were given."""

    indices: torch.Tensor
    distances: torch.Tensor
    labels: torch.Tensor | None
    layer: str
    metric: str

    def __repr__(self) -> str:
        q, k = self.indices.shape
        return f"NearestExamples(queries={q}, k={k}, layer={self.layer!r}, metric={self.metric!r})"


def _representation(m: Model, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer``'s output on one chunk, flattened to ``(n, features)``, as float."""
    captured: list[torch.Tensor] = []

    def keep(out: torch.Tensor) -> None:
        captured.append(out.detach())
        raise _HookAbort()  # stop the forward pass here: later layers are not needed

    try:
        with forward_hook(m, module, keep), torch.no_grad():
            m.forward(x)
    except _HookAbort:
        pass
    if not captured:
        raise LayerError(f"layer {layer_name(m, module)!r} did not run in the forward pass")
    return captured[0].reshape(len(x), -1).float()


def _distances(q: torch.Tensor, r: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "cosine":
        return (1 - q @ r.T).clamp_min(0)
    # Pairwise differences, not the |a|²+|b|²-2ab expansion, which loses precision exactly for
    # the close pairs nearest-neighbour search is about.
    return torch.cdist(q, r, compute_mode="donot_use_mm_for_euclid_dist")


def nearest_examples(
    model: Any,
    queries: Any,
    dataset: Any,
    *,
    layer: str | nn.Module,
    k: int = 5,
    labels: Any = None,
    metric: str = "euclidean",
    batch_size: int | None = None,
    progress: bool | None = None,
) -> NearestExamples:
    """The ``k`` rows of ``dataset`` nearest to each query in ``layer``'s flattened output.

    ``metric`` is ``"euclidean"`` (‖a − b‖₂) or ``"cosine"`` (1 − cos(a, b)). The dataset is
    streamed in chunks of at most ``batch_size`` rows, and a running top-k is merged with each
    chunk, so memory is O(n_queries · (k + batch_size)) beyond the data itself. Ties are broken
    arbitrarily. Cost: one forward pass per query and per dataset row, up to ``layer`` only.

    Reference: the sample-based explainers of Caruana et al. 1999, "Case-based explanation of
    non-case-based learning methods"; Papernot & McDaniel 2018, "Deep k-Nearest Neighbors".
    """
    if metric not in ("euclidean", "cosine"):
        raise InputError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    m = wrap(model)
    module = m.layer(layer)
    name = layer_name(m, module)
    with m.explaining():
        q = m.prepare(queries, name="queries")
        data = m.prepare(dataset, name="dataset")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(data):
            raise InputError(f"k must be an int from 1 to the dataset's {len(data)} rows, got {k!r}")
        if q.shape[1:] != data.shape[1:]:
            raise InputError(f"queries have rows shaped {tuple(q.shape[1:])} but the dataset has "
                             f"rows shaped {tuple(data.shape[1:])}")
        lab = None
        if labels is not None:
            lab = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
            if lab.dim() == 0 or len(lab) != len(data):
                raise InputError(f"labels must have one entry per dataset row ({len(data)}), "
                                 f"got shape {tuple(lab.shape)}")
        reps = [_representation(m, module, q[s]) for s in
                m.chunks(len(q), q.shape[1:], batch_size=batch_size, progress=False, desc="queries")]
        qrep = torch.cat(reps)
        if metric == "cosine":
            qrep = F.normalize(qrep, dim=1)
        best_d = qrep.new_empty((len(q), 0))
        best_i = torch.empty((len(q), 0), dtype=torch.long, device=qrep.device)
        for s, _ in m.chunks(len(data), data.shape[1:], batch_size=batch_size, progress=progress,
                          desc="nearest examples"):
            rep = _representation(m, module, data[s])
            if metric == "cosine":
                rep = F.normalize(rep, dim=1)
            d = torch.cat([best_d, _distances(qrep, rep, metric)], dim=1)
            i = torch.cat([best_i, torch.arange(s.start, s.stop, device=qrep.device).expand(len(q), -1)],
                          dim=1)
            best_d, pos = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False, sorted=True)
            best_i = i.gather(1, pos)
    out_labels = lab[best_i.to(lab.device)] if lab is not None else None
    return NearestExamples(indices=best_i, distances=best_d, labels=out_labels, layer=name,
                           metric=metric)
