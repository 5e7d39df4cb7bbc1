"""Adversarial examples: FGSM, PGD, and accuracy against attack strength.

Both attacks move the inputs along the gradient of the cross-entropy loss of the logits,
``L(x) = CE(f(x), target)``: an untargeted attack *increases* the loss of ``target`` (by default
the model's prediction at the clean input, resolved once; pass the true labels to attack those),
a targeted attack *decreases* the loss toward ``target``. All rows run as batches of at most
``batch_size``; only the PGD steps, which depend on each other, run in a Python loop.

Agreement with Captum (``captum.robust.FGSM`` / ``PGD`` given ``loss_func=CrossEntropyLoss``,
the same step size and no random start) is tested to 1e-6 for ``norm="linf"``. Two differences
are deliberate:

- Captum's FGSM treats gradient entries with ``|g| <= 1e-6`` as zero (``zero_thresh``); here
  every nonzero entry moves by ``eps * sign(g)``, which is the formula of Goodfellow et al.
  Captum's threshold also applies inside its PGD, where it changes the trajectory: on 100 test
  digits at eps=0.1, 5 steps, 27% of the pixels end up to 0.2 apart. With ``zero_thresh = 0``
  both attacks agree with these to 0.0 (tests/probe/test_adversarial.py).
- Captum's PGD with ``norm="L2"`` still takes *sign* steps (it reuses FGSM) and only projects
  onto the L2 ball, which is neither the L2 steepest-ascent step nor Madry et al.'s L2 PGD.
  Here an L2 step is ``step_size * g / ||g||_2`` per row, so the two do not agree for L2.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .._common import (
    Stopwatch,
    check_choice,
    check_positive,
    check_positive_int,
    generator,
    new_seed,
    require_classes,
)
from ..adapters import wrap
from ..errors import InputError, NotDifferentiableError, TargetError, UnknownMethodError
from ..model import Model, normalize_target, select_target
from ._result import AttackResult, RobustnessCurve

__all__ = ["fgsm", "pgd", "robustness_curve", "AttackResult", "RobustnessCurve"]

_NORMS = ("linf", "l2")


# -- shared by the attacks (jsma too) -----------------------------------------------------------
def _check_clamp(clamp: Any) -> tuple[float, float] | None:
    if clamp is None:
        return None
    try:
        lo, hi = clamp
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError) as err:
        raise InputError(f"clamp must be None or a pair (low, high), got {clamp!r}") from err
    if not lo < hi:
        raise InputError(f"clamp must be a pair (low, high) with low < high, got {clamp!r}")
    return lo, hi


def _setup(model: Any, inputs: Any, clamp: Any, batch_size: int | None, method: str):
    m = wrap(model, batch_size=batch_size)
    m.require_gradients(method)
    bounds = _check_clamp(clamp)
    x = m.prepare(inputs, as_float=True)
    if bounds is not None and (bool((x < bounds[0]).any()) or bool((x > bounds[1]).any())):
        raise InputError(
            f"the inputs lie outside the clamp range {bounds} (min {float(x.min()):g}, max "
            f"{float(x.max()):g}); pass the range the inputs live in as clamp=(low, high), or "
            "clamp=None for no range"
        )
    return m, x, bounds


def _bound(x: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


def _input_gradients(m: Model, x: torch.Tensor, scalars: list[torch.Tensor], what: str) -> list[torch.Tensor]:
    """d s / dx for each scalar ``s`` (the graph kept until the last), or a clear error when the
    model is not differentiable; ``what`` names the differentiated output."""
    try:
        return [torch.autograd.grad(s, x, retain_graph=i < len(scalars) - 1)[0].detach()
                for i, s in enumerate(scalars)]
    except RuntimeError as err:
        raise NotDifferentiableError(
            f"could not differentiate {m.name}'s {what} with respect to its inputs ({err})"
        ) from err


def _loss_gradient(m: Model, x: torch.Tensor, target: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """d CE(f(x), target) / dx for one chunk: ``(gradient, logits, target)``.

    The summed loss gives every row its own gradient (rows are independent in eval mode);
    ``target=None`` takes the argmax of this very forward pass.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = m.forward(x)
        require_classes(out, m.name, "an adversarial attack")
        t = select_target(out, target)
        (grad,) = _input_gradients(m, x, [F.cross_entropy(out, t, reduction="sum")], "loss")
    return grad, out.detach(), t


def _clean_outputs(m: Model, x0: torch.Tensor, target: Any, purpose: str
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits at the clean rows and the resolved target (a one-logit model is refused)."""
    with torch.no_grad():
        out0 = m.forward(x0)
    require_classes(out0, m.name, purpose)
    return out0, select_target(out0, target)


def _result(
    x: torch.Tensor, adv: torch.Tensor, preds: torch.Tensor, orig: torch.Tensor,
    target: torch.Tensor, targeted: bool, meta: dict,
) -> AttackResult:
    diff = (adv - x).reshape(len(x), -1)
    success = preds == target if targeted else preds != target
    return AttackResult(
        adversarial=adv, success=success,
        perturbation_norm={"linf": diff.abs().amax(dim=1), "l2": diff.norm(dim=1)},
        predictions=preds, original_predictions=orig, target=target, meta=meta, inputs=x,
    )


def _check_targeted(target: Any, targeted: bool) -> None:
    if targeted and target is None:
        raise TargetError("a targeted attack needs target= (the class to reach, per row or for all)")


# -- FGSM ---------------------------------------------------------------------------------------
def fgsm(
    model: Any, inputs: Any, *, target: Any = None, eps: float, targeted: bool = False,
    clamp: tuple[float, float] | None = (0, 1), batch_size: int | None = None,
    progress: bool | None = None,
) -> AttackResult:
    """Fast gradient sign method: ``x' = clip(x ± eps · sign(∇ₓ CE(f(x), target)))``.

    ``+`` for an untargeted attack (away from ``target``, default the clean prediction), ``-`` for
    ``targeted=True`` (toward ``target``, which is then required). ``clamp`` keeps ``x'`` in the
    valid input range (``None``: no range). Cost: 2 forward and 1 backward pass per row (the
    gradient, then the prediction at ``x'``). Goodfellow et al., 2015, "Explaining and harnessing
    adversarial examples".

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 2)
        >>> r = fgsm(lin, torch.full((3, 2), 0.5), eps=0.1)
        >>> bool((r.perturbation_norm["linf"] <= 0.1 + 1e-6).all())
        True
    """
    watch = Stopwatch()
    eps = check_positive(eps, "eps", allow_zero=True)
    _check_targeted(target, targeted)
    m, x, bounds = _setup(model, inputs, clamp, batch_size, "fgsm")
    sign = -1.0 if targeted else 1.0
    advs, preds, origs, targets = [], [], [], []
    with m.explaining():
        for rows, t in m.chunks(len(x), x.shape[1:], target=target, batch_size=batch_size,
                                progress=progress, desc="fgsm"):
            g, out, t = _loss_gradient(m, x[rows], t)
            adv = _bound(x[rows] + sign * eps * g.sign(), bounds)
            with torch.no_grad():
                preds.append(m.forward(adv).argmax(dim=1))
            advs.append(adv)
            origs.append(out.argmax(dim=1))
            targets.append(t)
    n = len(x)
    meta = {
        "attack": "fgsm", "eps": eps, "targeted": targeted, "clamp": bounds, "steps": 1,
        "seed": None, "forward_rows": 2 * n, "backward_rows": n, "seconds": watch.seconds(),
    }
    return _result(x, torch.cat(advs), torch.cat(preds), torch.cat(origs), torch.cat(targets),
                   targeted, meta)


# -- PGD ----------------------------------------------------------------------------------------
def _row_norm(v: torch.Tensor) -> torch.Tensor:
    """Per-row L2 norm, shaped to broadcast against ``v``."""
    return v.reshape(len(v), -1).norm(dim=1).reshape((-1,) + (1,) * (v.dim() - 1))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    scale = (eps / _row_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return delta * scale


def _random_start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    """A point drawn uniformly from the eps ball around each row."""
    if norm == "linf":
        return (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    u = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    u = u / _row_norm(u).clamp_min(1e-12)
    d = x[0].numel()
    r = torch.rand(len(x), generator=gen, device=x.device, dtype=x.dtype) ** (1.0 / d) * eps
    return u * r.reshape((-1,) + (1,) * (x.dim() - 1))


def pgd(
    model: Any, inputs: Any, *, target: Any = None, eps: float, steps: int = 10,
    step_size: float | None = None, norm: str = "linf", random_start: bool = True,
    targeted: bool = False, clamp: tuple[float, float] | None = (0, 1), seed: int | None = None,
    batch_size: int | None = None, progress: bool | None = None,
) -> AttackResult:
    """Projected gradient descent: ``x ← Π_{B(x₀, eps) ∩ clamp}(x ± step_size · s(∇ₓ CE))``.

    ``s(g) = sign(g)`` for ``norm="linf"`` and ``g / ||g||₂`` per row for ``norm="l2"``; ``Π``
    projects back onto the eps ball around the clean input, then onto ``clamp``, so ``x'`` never
    leaves either. ``step_size`` defaults to ``2.5 · eps / steps`` (Madry et al.); with
    ``random_start`` the walk starts at a uniform point of the ball, drawn from a private
    generator seeded with ``seed`` (recorded in ``meta``; the global RNG is not touched).
    ``target``/``targeted`` as in :func:`fgsm`. Cost per row: ``steps + 2`` forward and ``steps``
    backward passes. Madry et al., 2018, "Towards deep learning models resistant to adversarial
    attacks".

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 2)
        >>> r = pgd(lin, torch.full((3, 2), 0.5), eps=0.1, seed=0)
        >>> bool((r.perturbation_norm["linf"] <= 0.1 + 1e-6).all())
        True
    """
    watch = Stopwatch()
    eps = check_positive(eps, "eps", allow_zero=True)
    steps = check_positive_int(steps, "steps")
    step_size = 2.5 * eps / steps if step_size is None else check_positive(step_size, "step_size",
                                                                         allow_zero=True)
    norm = check_choice(norm.lower() if isinstance(norm, str) else norm, "norm", _NORMS)
    _check_targeted(target, targeted)
    m, x, bounds = _setup(model, inputs, clamp, batch_size, "pgd")
    seed = new_seed(seed)
    gen = generator(seed, x.device) if random_start else None
    sign = -1.0 if targeted else 1.0
    advs, preds, origs, targets = [], [], [], []
    with m.explaining():
        for rows, t in m.chunks(len(x), x.shape[1:], target=target, batch_size=batch_size,
                                progress=progress, desc="pgd"):
            x0 = x[rows]
            out0, t = _clean_outputs(m, x0, t, "an adversarial attack")
            adv = _bound(x0 + _random_start(x0, eps, norm, gen), bounds) if random_start else x0
            for _ in range(steps):
                g, _, _ = _loss_gradient(m, adv, t)
                if norm == "linf":
                    g = g.sign()
                else:
                    g = g / _row_norm(g).clamp_min(1e-12)
                adv = _bound(x0 + _project(adv + sign * step_size * g - x0, eps, norm), bounds)
            with torch.no_grad():
                preds.append(m.forward(adv).argmax(dim=1))
            advs.append(adv.detach())
            origs.append(out0.argmax(dim=1))
            targets.append(t)
    n = len(x)
    meta = {
        "attack": "pgd", "eps": eps, "steps": steps, "step_size": step_size, "norm": norm,
        "random_start": random_start, "targeted": targeted, "clamp": bounds, "seed": seed,
        "forward_rows": (steps + 2) * n, "backward_rows": steps * n, "seconds": watch.seconds(),
    }
    return _result(x, torch.cat(advs), torch.cat(preds), torch.cat(origs), torch.cat(targets),
                   targeted, meta)


# -- robustness curve ---------------------------------------------------------------------------
_ATTACKS = {"fgsm": fgsm, "pgd": pgd}


def robustness_curve(
    model: Any, data: Any, labels: Any, *, attack: str = "fgsm", eps_values: Sequence[float],
    seed: int | None = None, batch_size: int | None = None, progress: bool | None = None,
    **attack_params: Any,
) -> RobustnessCurve:
    """Accuracy on ``(data, labels)`` under an untargeted ``attack`` at each ``eps``.

    Each attack pushes away from the true label (``target=labels``); accuracy is the fraction of
    rows whose prediction at the adversarial input is still the label. ``attack_params`` go to the
    attack (``steps``, ``norm``, ``clamp``...). ``seed`` is PGD's random start, resolved once so
    every eps starts from the same point (FGSM draws nothing and ignores it). Cost: one attack
    per eps value.

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 2)
        >>> c = robustness_curve(lin, torch.rand(8, 2), torch.zeros(8, dtype=torch.long),
        ...                      eps_values=[0.0, 0.1])
        >>> len(c.accuracy)
        2
    """
    watch = Stopwatch()
    if attack not in _ATTACKS:
        raise UnknownMethodError(f"unknown attack {attack!r}; choose one of {sorted(_ATTACKS)}")
    for bad in ("target", "targeted"):
        if bad in attack_params:
            raise InputError(f"robustness_curve attacks the labels untargeted; do not pass {bad}=")
    eps_list = [check_positive(e, "every eps value", allow_zero=True) for e in eps_values]
    if not eps_list:
        raise InputError("eps_values must hold at least one value")
    if attack == "pgd":
        attack_params["seed"] = new_seed(seed)
    m = wrap(model)
    x = m.prepare(data, name="data", as_float=True)
    y = normalize_target(labels, len(x))
    if not isinstance(y, torch.Tensor):
        raise TargetError("labels must hold one class per row of data")
    accuracy = []
    for eps in eps_list:
        r = _ATTACKS[attack](m, x, target=y, eps=eps, **attack_params, batch_size=batch_size,
                             progress=progress)
        accuracy.append(float((r.predictions == r.target).float().mean()))
    return RobustnessCurve(
        eps=eps_list, accuracy=accuracy, attack=attack, params=dict(attack_params),
        meta={"n": len(x), "seconds": watch.seconds()},
    )
