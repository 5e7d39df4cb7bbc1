"""PGD: pellucid against the bare passes and against Captum (issue 6, performance).

64 seeded random inputs 3x32x32 in [0, 1] are attacked on ``TinyResNet(seed=0)`` in eval mode:
PGD, 10 steps, L∞, eps = 8/255, step size 2.5·eps/10, untargeted against fixed labels, no random
start (so every contender does the same deterministic work). Contenders:

* ``bare``     — the least work the attack needs, written by hand over the 64 rows in one batch:
  10 × (forward + summed cross-entropy + ``torch.autograd.grad`` to the input with the
  parameters frozen, sign step, projection onto the eps ball, clamp to [0, 1]).
* ``pellucid`` — ``pellucid.probe.pgd(model, x, eps=eps, steps=10, step_size=2.5*eps/10,
  random_start=False, target=y, progress=False)``; it also runs one forward pass at the clean
  input and one at the result (12 forward, 10 backward passes per row).
* ``captum``   — ``captum.robust.PGD(model, loss_func=CrossEntropyLoss(reduction="none"),
  lower_bound=0, upper_bound=1).perturb(x, radius=eps, step_size=2.5*eps/10, step_num=10,
  target=y, random_start=False)``. Captum's default loss is ``-log(output[target])``, which is
  meant for probabilities, not logits (NaN on negative logits); the cross-entropy makes it the
  same attack as the other two.

Timing as in ``ig.py``: interleaved repetitions with ``_timing.measure``, medians, and each ratio
the median of the per-repetition ratios. Before timing, the adversarial inputs are compared:
Captum zeroes gradient entries with |g| <= 1e-6 (``zero_thresh``), which can change its
trajectory, so the differences are reported rather than asserted for Captum (and also with
``zero_thresh = 0``, where they should vanish); pellucid and bare must agree.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from _timing import measure, median_ratio

from pellucid._state import explaining  # eval mode, parameters frozen, restored after

NAME = "pgd"
N_ROWS = 64
STEPS = 10
EPS = 8 / 255
STEP_SIZE = 2.5 * EPS / STEPS
RATIOS = (("pellucid", "bare"), ("pellucid", "captum"), ("captum", "bare"))


def bare_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """10 L∞ PGD steps by hand, all rows in one batch."""
    adv = x
    with explaining(model):
        for _ in range(STEPS):
            xs = adv.detach().requires_grad_(True)
            loss = F.cross_entropy(model(xs), y, reduction="sum")
            (g,) = torch.autograd.grad(loss, xs)
            adv = (x + (adv + STEP_SIZE * g.sign() - x).clamp(-EPS, EPS)).clamp(0.0, 1.0)
    return adv.detach()


def case() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    from pellucid.zoo import TinyResNet

    model = TinyResNet(seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(N_ROWS, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (N_ROWS,), generator=gen)
    return model, x, y


def captum_attack(model: torch.nn.Module, zero_thresh: float | None = None):
    from captum.robust import PGD

    attack = PGD(model, loss_func=torch.nn.CrossEntropyLoss(reduction="none"),
                 lower_bound=0.0, upper_bound=1.0)
    if zero_thresh is not None:
        attack.fgsm.zero_thresh = zero_thresh
    return attack


def contenders(model: torch.nn.Module, x: torch.Tensor,
               y: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """name -> a call doing that contender's whole attack once."""
    from pellucid.probe import pgd

    attack = captum_attack(model)
    return {
        "bare": lambda: bare_pgd(model, x, y),
        "pellucid": lambda: pgd(model, x, eps=EPS, steps=STEPS, step_size=STEP_SIZE,
                                random_start=False, target=y, progress=False).adversarial,
        "captum": lambda: attack.perturb(x, radius=EPS, step_size=STEP_SIZE, step_num=STEPS,
                                         target=y, random_start=False),
    }


def agreement(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Max |difference| between the adversarial inputs (pellucid vs bare must be ~0)."""
    from pellucid.probe import pgd

    ours = pgd(model, x, eps=EPS, steps=STEPS, step_size=STEP_SIZE, random_start=False,
               target=y, progress=False).adversarial
    bare = bare_pgd(model, x, y)
    kw = dict(radius=EPS, step_size=STEP_SIZE, step_num=STEPS, target=y, random_start=False)
    theirs = captum_attack(model).perturb(x, **kw)
    exact = captum_attack(model, zero_thresh=0.0).perturb(x, **kw)
    d_bare = float((ours - bare).abs().max())
    if d_bare > 1e-6:
        raise RuntimeError(f"pellucid and bare disagree (max |difference| {d_bare:.3g})")
    return {
        "bare": d_bare,
        "captum": float((ours - theirs).abs().max()),
        "captum_frac_differing": float(((ours - theirs).abs() > 1e-6).float().mean()),
        "captum_zero_thresh_0": float((ours - exact).abs().max()),
        "max_linf": float((ours - x).abs().amax()),
    }


def run(*, reps: int = 11, warmup: int = 2) -> dict[str, Any]:
    model, x, y = case()
    agree = agreement(model, x, y)
    measured = measure(contenders(model, x, y), reps=reps, warmup=warmup)
    times = measured["times"]
    return {
        "benchmark": NAME,
        "model": f"TinyResNet ({N_ROWS}, 3, 32, 32)",
        "steps": STEPS, "eps": EPS, "step_size": STEP_SIZE, "rows": N_ROWS,
        "reps": reps, "warmup": warmup,
        "agreement": agree,
        "seconds": {n: statistics.median(ts) for n, ts in times.items()},
        "min_seconds": {n: min(ts) for n, ts in times.items()},
        "ratios": {f"{a}/{b}": median_ratio(times[a], times[b]) for a, b in RATIOS},
        "discarded_reps": measured["discarded"],
        "waited_seconds": measured["waited"],
        "other_load": measured["other"],
        "runs": times,
    }


def markdown(result: dict[str, Any]) -> str:
    head = ("| model | bare | pellucid | captum | pellucid/bare | pellucid/captum | captum/bare "
            "| max abs diff vs bare | vs captum | vs captum (zero_thresh=0) |")
    s, r, a = result["seconds"], result["ratios"], result["agreement"]
    lines = [head, "|" + " --- |" * (head.count("|") - 1),
             f"| {result['model']} | {1e3 * s['bare']:.0f} ms | {1e3 * s['pellucid']:.0f} ms "
             f"| {1e3 * s['captum']:.0f} ms "
             + "".join(f"| {r[f'{x}/{y}']:.2f} " for x, y in RATIOS)
             + f"| {a['bare']:.1e} | {a['captum']:.1e} | {a['captum_zero_thresh_0']:.1e} |",
             "",
             f"PGD L∞, {result['steps']} steps, eps 8/255, step 2.5·eps/{result['steps']}, "
             f"{result['rows']} rows, no random start; medians of {result['reps']} interleaved "
             f"repetitions after {result['warmup']} warm-up runs (repetitions rerun because "
             f"other processes were busy: {result['discarded_reps']}); entries differing from "
             f"Captum's by > 1e-6: {100 * a['captum_frac_differing']:.2f}%."]
    return "\n".join(lines)
