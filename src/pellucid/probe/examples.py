"""Example-based explanation: the rows of a data set nearest to each input in a layer's
representation."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._common import check_choice, check_positive_int
from .._deprecation import renamed
from .._hooks import Site, first_tensor, hooks, layer_key
from ..adapters import wrap
from ..errors import InputError
from ..model import Model
from ._result import NearestExamples

__all__ = ["nearest_examples", "NearestExamples"]


class _Stop(Exception):
    """Ends a forward pass once the layer has run: later layers are not needed. (Not a
    ``PellucidError`` or ``RuntimeError``, so ``Model.forward`` lets it through untouched.)"""


def _representation(m: Model, layer: Any, key: str, x: torch.Tensor, *, whole: bool) -> torch.Tensor:
    """``layer``'s output on one chunk, flattened to ``(n, features)``, as float.

    With ``whole`` the forward pass runs to the end, so that a reused module is refused (one
    representation per row is needed); later chunks stop right after the layer. A call site
    ``"name@k"`` stops after the k-th call.
    """
    seen: list[torch.Tensor] = []

    def keep(site: Site, output: Any) -> None:
        seen.append(first_tensor(output, site.name).detach())
        if not whole:
            raise _Stop

    with hooks(m, {layer: keep}) as run, torch.no_grad():
        try:
            m.forward(x)
        except _Stop:
            pass
        else:  # the pass ran to the end: the layer must have run exactly once (at its call site)
            run.check_once(key)
    return seen[0].reshape(len(x), -1).float()


def _distances(q: torch.Tensor, r: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "cosine":
        return (1 - q @ r.T).clamp_min(0)
    # Pairwise differences, not the |a|²+|b|²-2ab expansion, which loses precision exactly for
    # the close pairs nearest-neighbour search is about.
    return torch.cdist(q, r, compute_mode="donot_use_mm_for_euclid_dist")


@renamed(queries="inputs", dataset="data")
def nearest_examples(
    model: Any,
    inputs: Any,
    data: Any,
    *,
    layer: str | nn.Module,
    k: int = 5,
    labels: Any = None,
    metric: str = "euclidean",
    batch_size: int | None = None,
    progress: bool | None = None,
) -> NearestExamples:
    """The ``k`` rows of ``data`` nearest to each row of ``inputs`` in ``layer``'s flattened output.

    ``labels`` are the data's own classes, one per row of ``data`` (returned for the neighbours).
    ``metric`` is ``"euclidean"`` (‖a − b‖₂) or ``"cosine"`` (1 − cos(a, b)). ``layer`` is a name,
    a module or a call site ``"name@k"`` of a reused module. The data are streamed in chunks of
    at most ``batch_size`` rows, and a running top-k is merged with each chunk, so memory is
    O(n_inputs · (k + batch_size)) beyond the data themselves. Ties are broken arbitrarily.
    Cost: one forward pass per input and per data row, up to ``layer`` only. ``queries=`` and
    ``dataset=`` are the deprecated names of ``inputs=`` and ``data=``.

    Reference: the sample-based explainers of Caruana et al. 1999, "Case-based explanation of
    non-case-based learning methods"; Papernot & McDaniel 2018, "Deep k-Nearest Neighbors".
    """
    metric = check_choice(metric, "metric", ("euclidean", "cosine"))
    m = wrap(model)
    key = layer_key(m, layer)
    with m.explaining():
        q = m.prepare(inputs)
        ref = m.prepare(data, name="data")
        if check_positive_int(k, "k") > len(ref):
            raise InputError(f"k must be an int from 1 to the data's {len(ref)} rows, got {k!r}")
        if q.shape[1:] != ref.shape[1:]:
            raise InputError(f"inputs have rows shaped {tuple(q.shape[1:])} but the data have "
                             f"rows shaped {tuple(ref.shape[1:])}")
        lab = None
        if labels is not None:
            lab = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
            if lab.dim() == 0 or len(lab) != len(ref):
                raise InputError(f"labels must have one entry per row of data ({len(ref)}), "
                                 f"got shape {tuple(lab.shape)}")
        reps = [_representation(m, layer, key, q[rows], whole=rows.start == 0) for rows, _ in
                m.chunks(len(q), q.shape[1:], batch_size=batch_size, progress=False, desc="inputs")]
        qrep = torch.cat(reps)
        if metric == "cosine":
            qrep = F.normalize(qrep, dim=1)
        best_d = qrep.new_empty((len(q), 0))
        best_i = torch.empty((len(q), 0), dtype=torch.long, device=qrep.device)
        for rows, _ in m.chunks(len(ref), ref.shape[1:], batch_size=batch_size, progress=progress,
                                desc="nearest examples"):
            rep = _representation(m, layer, key, ref[rows], whole=False)
            if metric == "cosine":
                rep = F.normalize(rep, dim=1)
            d = torch.cat([best_d, _distances(qrep, rep, metric)], dim=1)
            i = torch.cat([best_i, torch.arange(rows.start, rows.stop, device=qrep.device)
                           .expand(len(q), -1)], dim=1)
            best_d, pos = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False, sorted=True)
            best_i = i.gather(1, pos)
    out_labels = lab[best_i.to(lab.device)] if lab is not None else None
    return NearestExamples(indices=best_i, distances=best_d, labels=out_labels, layer=key,
                           metric=metric)
