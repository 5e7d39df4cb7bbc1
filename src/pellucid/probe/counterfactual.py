"""Counterfactual explanations for tabular rows: the smallest change that flips the answer.

:func:`counterfactual` looks, for every row ``x`` and each of its ``k`` candidates, for a nearby
``x'`` that the model assigns to the target class, under the user's constraints (immutable
features, ranges, categorical values; :mod:`._constraints`). Two searches:

- ``"gradient"``: the objective of Wachter et al. (2017), ``hinge(f(x'), t) + lambda *
  dist(x', x)``, with DiCE's diversity term for ``k > 1`` (Mothilal et al. 2020), optimised by
  Adam with OWL-QN steps for the L1 term (:mod:`._wachter`);
- ``"sampling"``: Growing Spheres (Laugel et al. 2017), gradient-free, for black boxes
  (:mod:`._growing_spheres`).

The distance is the L1 (default) or L2 norm of ``(x' - x) / scale``, with a per-feature
``scale``: the standard deviation of each feature over the rows when ``n > 1`` (a constant
feature gets scale 1), else 1; pass ``scale=`` to use e.g. the training set's MAD or std, as
Wachter et al. recommend. Moving feature ``j`` by ``delta`` costs ``|delta| / scale_j``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._common import (
    Stopwatch,
    check_choice,
    check_positive,
    check_positive_int,
    generator,
    new_seed,
    progress_bar,
    require_classes,
)
from .._deprecation import renamed
from ..adapters import wrap
from ..errors import InputError
from ..model import select_target
from . import _constraints as cons
from ._growing_spheres import growing_spheres
from ._result import Counterfactuals
from ._wachter import MARGIN, wachter

__all__ = ["counterfactual", "Counterfactuals"]

_DISTANCES = ("l1", "l2")
_TOL = 1e-6


@renamed(x="inputs", desired="target")
def counterfactual(
    model: Any, inputs: Any, *, target: Any, k: int = 1, distance: str = "l1",
    immutable: Sequence[int] = (), ranges: Any = None, categorical: Any = None, scale: Any = None,
    search: str = "auto", steps: int = 500, lr: float = 0.05, diversity: float = 1.0,
    samples: int = 500, seed: int | None = None, batch_size: int | None = None,
    progress: bool | None = None,
) -> Counterfactuals:
    """``k`` counterfactuals per row of ``inputs`` ``(n, d)`` that the model assigns to ``target``.

    ``target`` is the wanted class, one for all rows or one per row. ``immutable`` feature indices
    never change; ``ranges`` (``{feature: (low, high)}`` or a ``(d, 2)`` tensor) bound every
    candidate. ``scale`` (default: the std of each feature over ``inputs``, 1 for a single row)
    divides each feature's change in the distance. See the module docstring for the objective.

    ``search="gradient"`` runs Wachter et al.'s optimisation for at most ``steps`` Adam steps
    (learning rate ``lr``; ``diversity`` weighs DiCE's term for ``k > 1``);
    ``search="sampling"`` runs the gradient-free Growing Spheres search, ``samples`` draws per
    row and layer and at most ``steps`` layers; ``"auto"`` (default) picks gradient for a
    differentiable model, else sampling. ``seed`` seeds the random starts (k > 1) and the samples
    from a private generator (the global RNG is untouched).

    ``categorical`` (``{feature: allowed values}``, e.g. integer category codes or ``(0.0, 1.0)``
    for a flag) restricts those features to the listed values (every original value must be one
    of them). The gradient search optimises the relaxed value and snaps it to the nearest allowed
    value whenever a candidate is recorded and at the end, re-checking the prediction there; the
    sampling search draws them from the allowed values (keeping the original about half the time).
    ``reached`` always refers to the snapped candidate. An immutable feature stays immutable.

    Cost: gradient, at most ``steps`` forward and backward passes per row and candidate;
    sampling, ``samples`` forward passes per row and layer, plus one per changed feature to
    sparsify. ``x=`` and ``desired=`` are the deprecated names of ``inputs=`` and ``target=``.

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = lin.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])); _ = lin.bias.zero_()
        >>> r = counterfactual(lin, torch.tensor([[1.0, 0.0]]), target=1, seed=0)
        >>> bool(r.reached.all()), r.table()[0]["feature"]
        (True, 0)
    """
    watch = Stopwatch()
    distance = check_choice(distance, "distance", _DISTANCES)
    k = check_positive_int(k, "k")
    steps = check_positive_int(steps, "steps")
    lr = check_positive(lr, "lr")
    diversity = check_positive(diversity, "diversity", allow_zero=True)
    search = check_choice(search, "search", ("auto", "gradient", "sampling"))
    samples = check_positive_int(samples, "samples")
    seed = new_seed(seed)
    m = wrap(model, batch_size=batch_size)
    if search == "auto":
        search = "gradient" if m.differentiable else "sampling"
    if search == "gradient":
        m.require_gradients("counterfactual")
    x = m.prepare(inputs, as_float=True)
    if x.dim() != 2:
        raise InputError(f"counterfactual takes tabular rows shaped (n, d); got shape {tuple(x.shape)}")
    n, d = x.shape
    frozen = cons.immutable_features(immutable, d)
    bounds = cons.feature_ranges(ranges, x)
    s = cons.feature_scale(scale, x)
    cats = cons.categorical_values(categorical, x, frozen, bounds)
    mask = torch.ones(d, dtype=x.dtype, device=x.device)
    mask[frozen] = 0
    options = {"search": search, "k": k, "distance": distance, "immutable": frozen,
               "steps": steps, "seed": seed, "scale": s, "ranges": bounds,
               "categorical": {j: v for j, v in cats}}

    rounds = progress_bar(range(steps), progress, "counterfactual", unit="step")
    try:
        with m.explaining():
            out0 = m.outputs(x[:1], batch_size=batch_size, progress=False)
            require_classes(out0, m.name, "counterfactual")
            wanted = select_target(torch.zeros(n, out0.shape[1], device=x.device), target)
            gen = generator(seed, x.device)
            if search == "sampling":
                best, _, best_pred, run = growing_spheres(
                    m, x, wanted, k=k, mask=mask, bounds=bounds, scale=s,
                    dist=lambda dl: cons.distance(dl, s, distance), l1=distance == "l1",
                    samples=samples, rounds=rounds, gen=gen, batch_size=batch_size, categorical=cats,
                )
                options["samples"] = samples
            else:
                best, _, best_pred, run = wachter(
                    m, x, wanted, k=k, classes=out0.shape[1], mask=mask, bounds=bounds, scale=s,
                    kind=distance, categorical=cats, rounds=rounds, lr=lr, diversity=diversity,
                    gen=gen, batch_size=batch_size,
                )
                options.update(lr=lr, diversity=diversity, margin=MARGIN)
    finally:
        getattr(rounds, "close", lambda: None)()
    return _result(x, best, best_pred, wanted, s, distance, {
        "method": "counterfactual", **options, "steps_run": run, "seconds": watch.seconds()})


def _result(x: torch.Tensor, best: torch.Tensor, best_pred: torch.Tensor, target: torch.Tensor,
            s: torch.Tensor, distance: str, meta: dict) -> Counterfactuals:
    n, d = x.shape
    k = len(best) // n
    cand = best.view(n, k, d)
    diff = cand - x[:, None, :]
    return Counterfactuals(
        inputs=x, candidates=cand, reached=(best_pred == target.repeat_interleave(k)).view(n, k),
        distance=cons.distance(diff, s, distance), changed=diff.abs() > _TOL, target=target,
        predictions=best_pred.view(n, k), meta=meta,
    )
