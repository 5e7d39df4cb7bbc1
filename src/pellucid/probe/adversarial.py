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
  both attacks agree with these to 0.0 (tests/test_adversarial.py).
- Captum's PGD with ``norm="L2"`` still takes *sign* steps (it reuses FGSM) and only projects
  onto the L2 ball, which is neither the L2 steepest-ascent step nor Madry et al.'s L2 PGD.
  Here an L2 step is ``step_size * g / ||g||_2`` per row, so the two do not agree for L2.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .._common import Stopwatch, generator, new_seed
from ..errors import InputError, ModelError, NotDifferentiableError, TargetError, UnknownMethodError
from ..model import Model, normalize_target, select_target
from ..adapters import wrap
from ._result import AttackResult, RobustnessCurve

__all__ = ["fgsm", "pgd", "robustness_curve", "AttackResult", "RobustnessCurve"]

_NORMS = ("linf", "l2")


# -- checks -------------------------------------------------------------------------------------
def _check_number(value: Any, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise InputError(f"{name} must be {bound}, got {value!r}")
    return float(value)


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


# -- one gradient -------------------------------------------------------------------------------
def _loss_gradient(m: Model, x: torch.Tensor, target: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """d CE(f(x), target) / dx for one chunk: ``(gradient, logits, target)``.

    The summed loss gives every row its own gradient (rows are independent in eval mode);
    ``target=None`` takes the argmax of this very forward pass.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = m.forward(x)
        if out.shape[1] < 2:
            raise ModelError(
                f"{m.name} has a single output; the attacks need class logits (n, classes >= 2). "
                "Wrap a one-logit binary model as torch.cat([-z, z], 1) / 2."
            )
        t = select_target(out, target)
        loss = F.cross_entropy(out, t, reduction="sum")
        try:
            (grad,) = torch.autograd.grad(loss, x)
        except RuntimeError as err:
            raise NotDifferentiableError(
                f"could not differentiate {m.name}'s loss with respect to its inputs ({err})"
            ) from err
    return grad.detach(), out.detach(), t


def _per_row(target: Any, s: slice) -> Any:
    return target[s] if isinstance(target, torch.Tensor) else target


def _result(
    m: Model, x: torch.Tensor, adv: torch.Tensor, preds: torch.Tensor, orig: torch.Tensor,
    target: torch.Tensor, targeted: bool, meta: dict,
) -> AttackResult:
    diff = (adv - x).reshape(len(x), -1)
    success = preds == target if targeted else preds != target
    return AttackResult(
        adversarial=adv, success=success,
        perturbation_norm={"linf": diff.abs().amax(dim=1), "l2": diff.norm(dim=1)},
        predictions=preds, original_predictions=orig, target=target, meta=meta, inputs=x,
    )


# -- FGSM ---------------------------------------------------------------------------------------
def fgsm(
    model: Any, inputs: Any, *, eps: float, target: Any = None, targeted: bool = False,
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
    eps = _check_number(eps, "eps")
    if targeted and target is None:
        raise TargetError("a targeted attack needs target= (the class to reach, per row or for all)")
    m, x, bounds = _setup(model, inputs, clamp, batch_size, "fgsm")
    per_row = normalize_target(target, len(x))
    sign = -1.0 if targeted else 1.0
    advs, preds, origs, targets = [], [], [], []
    with m.explaining():
        for s, _ in m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=progress, desc="fgsm"):
            g, out, t = _loss_gradient(m, x[s], _per_row(per_row, s))
            adv = _bound(x[s] + sign * eps * g.sign(), bounds)
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
    return _result(m, x, torch.cat(advs), torch.cat(preds), torch.cat(origs), torch.cat(targets),
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
    model: Any, inputs: Any, *, eps: float, steps: int = 10, step_size: float | None = None,
    norm: str = "linf", random_start: bool = True, target: Any = None, targeted: bool = False,
    clamp: tuple[float, float] | None = (0, 1), seed: int | None = None,
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
    eps = _check_number(eps, "eps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    step_size = 2.5 * eps / steps if step_size is None else _check_number(step_size, "step_size")
    if not isinstance(norm, str) or norm.lower() not in _NORMS:
        raise InputError(f"norm must be 'linf' or 'l2', got {norm!r}")
    norm = norm.lower()
    if targeted and target is None:
        raise TargetError("a targeted attack needs target= (the class to reach, per row or for all)")
    m, x, bounds = _setup(model, inputs, clamp, batch_size, "pgd")
    seed = new_seed(seed)
    gen = generator(seed, x.device) if random_start else None
    per_row = normalize_target(target, len(x))
    sign = -1.0 if targeted else 1.0
    advs, preds, origs, targets = [], [], [], []
    with m.explaining():
        for s, _ in m.chunks(len(x), x.shape[1:], batch_size=batch_size, progress=progress, desc="pgd"):
            x0 = x[s]
            with torch.no_grad():
                out0 = m.forward(x0)
            t = select_target(out0, _per_row(per_row, s))
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
    return _result(m, x, torch.cat(advs), torch.cat(preds), torch.cat(origs), torch.cat(targets),
                   targeted, meta)


# -- robustness curve ---------------------------------------------------------------------------
_ATTACKS = {"fgsm": fgsm, "pgd": pgd}


def robustness_curve(
    model: Any, data: Any, labels: Any, *, attack: str = "fgsm", eps_values: Sequence[float],
    **attack_params: Any,
) -> RobustnessCurve:
    """Accuracy on ``(data, labels)`` under an untargeted ``attack`` at each ``eps``.

    Each attack pushes away from the true label (``target=labels``); accuracy is the fraction of
    rows whose prediction at the adversarial input is still the label. ``attack_params`` go to the
    attack (``steps``, ``norm``, ``clamp``, ``batch_size``...); a PGD ``seed`` is resolved once so
    every eps uses the same random start. Cost: one attack per eps value.

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
    eps_list = [_check_number(e, "every eps value") for e in eps_values]
    if not eps_list:
        raise InputError("eps_values must hold at least one value")
    if attack == "pgd":
        attack_params["seed"] = new_seed(attack_params.get("seed"))
    m = wrap(model)
    x = m.prepare(data, as_float=True)
    y = normalize_target(labels, len(x))
    if not isinstance(y, torch.Tensor):
        raise TargetError("labels must hold one class per row of data")
    accuracy = []
    for eps in eps_list:
        r = _ATTACKS[attack](m, x, eps=eps, target=y, **attack_params)
        accuracy.append(float((r.predictions == r.target).float().mean()))
    return RobustnessCurve(
        eps=eps_list, accuracy=accuracy, attack=attack, params=dict(attack_params),
        meta={"n": len(x), "seconds": watch.seconds()},
    )
