"""Integrated Gradients: pellucid against the bare passes and against Captum.

For each model, 16 input rows are explained with IG at 50 Gauss–Legendre steps from a zero
baseline (800 path rows), one fixed target class per row. Contenders:

* ``bare@B``  — the least work IG needs: forward + backward over the 800 precomputed path rows in
  chunks of B rows (B in 50, 100, 200, 400, 800), input gradients only via
  ``torch.autograd.grad(out.gather(...).sum(), x)``, parameters frozen as pellucid freezes them.
  T_bare is the fastest B (by median).
* ``pellucid`` — ``pellucid.integrated_gradients(model, x, target=t, steps=50, progress=False)``
  with its default batch size.
* ``captum_default`` / ``captum_200`` — ``captum.attr.IntegratedGradients(model).attribute(x,
  target=t, n_steps=50, method="gausslegendre", internal_batch_size=None / 200)``.

Every repetition runs every contender once, in an order rotated from one repetition to the next,
so slow drifts of the machine's load hit all of them alike; the figures are medians over the
repetitions, and each ratio is the median of the per-repetition ratios. A repetition during which
other processes used the machine is run again (see ``_timing.py``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _timing import measure, summarize

from pellucid._state import explaining  # eval mode, parameters frozen, restored after

NAME = "ig"
STEPS = 50
N_ROWS = 16
BARE_BATCHES = (50, 100, 200, 400, 800)
RATIOS = (
    ("pellucid", "bare"),
    ("pellucid", "captum_default"),
    ("pellucid", "captum_200"),
    ("captum_default", "bare"),
    ("captum_200", "bare"),
)


# -- the work being timed ---------------------------------------------------------------------

def path_rows(x: torch.Tensor, t: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The n·steps Gauss–Legendre path points from a zero baseline, and their targets."""
    nodes, _ = np.polynomial.legendre.leggauss(steps)
    alphas = torch.as_tensor((nodes + 1.0) / 2.0, dtype=x.dtype)
    points = (alphas.view(1, -1, *([1] * (x.dim() - 1))) * x[:, None]).reshape(-1, *x.shape[1:])
    return points.contiguous(), t.repeat_interleave(steps)


def bare_gradients(model: torch.nn.Module, points: torch.Tensor, targets: torch.Tensor,
                   batch: int) -> torch.Tensor:
    """Input gradients of the targeted outputs over all rows, ``batch`` rows per pass."""
    grads = []
    for start in range(0, len(points), batch):
        xs = points[start:start + batch].detach().requires_grad_(True)
        out = model(xs)
        sel = out.gather(1, targets[start:start + batch, None]).sum()
        (g,) = torch.autograd.grad(sel, xs)
        grads.append(g)
    return torch.cat(grads)


def contenders(model: torch.nn.Module, x: torch.Tensor,
               t: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """name -> a call doing that contender's whole IG (or bare) computation once."""
    import captum.attr

    import pellucid

    points, targets = path_rows(x, t, STEPS)

    def bare(batch: int) -> Callable[[], Any]:
        def run() -> torch.Tensor:
            with explaining(model):
                return bare_gradients(model, points, targets, batch)
        return run

    ig = captum.attr.IntegratedGradients(model)
    calls: dict[str, Callable[[], Any]] = {f"bare@{b}": bare(b) for b in BARE_BATCHES}
    calls["pellucid"] = lambda: pellucid.integrated_gradients(
        model, x, target=t, steps=STEPS, progress=False).values
    calls["captum_default"] = lambda: ig.attribute(
        x, target=t, n_steps=STEPS, method="gausslegendre")
    calls["captum_200"] = lambda: ig.attribute(
        x, target=t, n_steps=STEPS, method="gausslegendre", internal_batch_size=200)
    return calls


# -- the cases --------------------------------------------------------------------------------

def digits_case() -> tuple[str, torch.nn.Module, torch.Tensor, torch.Tensor]:
    from pellucid.zoo import digits_cnn, load_digits

    model, _ = digits_cnn(pretrained=True)
    data = load_digits()
    x = data.x_test[:N_ROWS].clone()
    return "digits CNN (16, 1, 8, 8)", model.eval(), x, data.y_test[:N_ROWS].clone()


def resnet_case() -> tuple[str, torch.nn.Module, torch.Tensor, torch.Tensor]:
    from pellucid.zoo import TinyResNet

    model = TinyResNet(seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N_ROWS, 3, 32, 32, generator=gen)
    t = torch.arange(N_ROWS) % 10
    return "TinyResNet (16, 3, 32, 32)", model, x, t


CASES = (digits_case, resnet_case)


# -- measurement ------------------------------------------------------------------------------


def agreement(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> dict[str, float]:
    """Max |pellucid − Captum| (and |pellucid − bare passes|) over the attributions.

    The bare passes' gradients, weighted by the quadrature and multiplied by the inputs, must
    give the same attributions, or the bare contender would not be doing IG's work.
    """
    import captum.attr

    import pellucid

    ours = pellucid.integrated_gradients(model, x, target=t, steps=STEPS, progress=False).values
    theirs = captum.attr.IntegratedGradients(model).attribute(
        x, target=t, n_steps=STEPS, method="gausslegendre")
    _, weights = np.polynomial.legendre.leggauss(STEPS)
    with explaining(model):
        grads = bare_gradients(model, *path_rows(x, t, STEPS), 200)
    w = torch.as_tensor(weights / 2.0, dtype=x.dtype).view(1, -1, *([1] * (x.dim() - 1)))
    bare = x * (grads.view(len(x), STEPS, *x.shape[1:]) * w).sum(dim=1)
    scale = float(theirs.abs().max())
    diffs = {"captum": float((ours - theirs).abs().max()), "bare": float((ours - bare).abs().max())}
    for name, diff in diffs.items():
        if diff > 1e-4 * max(scale, 1e-3):
            raise RuntimeError(
                f"pellucid and {name} disagree (max |difference| {diff:.3g} at attributions up "
                f"to {scale:.3g}): the contenders would not be timing the same work"
            )
    return {"max_abs_diff": diffs["captum"], "max_abs_diff_bare": diffs["bare"],
            "max_abs_attribution": scale}


def run(*, reps: int = 11, warmup: int = 2) -> dict[str, Any]:
    """The benchmark: one entry per model, JSON-ready."""
    from pellucid.model import default_batch_size

    results = []
    for case in CASES:
        label, model, x, t = case()
        with torch.no_grad():
            assert model(x).shape == (N_ROWS, 10)
        entry: dict[str, Any] = {
            "model": label,
            "path_rows": N_ROWS * STEPS,
            "pellucid_batch": default_batch_size(x.shape[1:]),
            "agreement": agreement(model, x, t),
        }
        entry.update(summarize(measure(contenders(model, x, t), reps=reps, warmup=warmup), RATIOS, BARE_BATCHES))
        results.append(entry)
    return {
        "benchmark": NAME,
        "steps": STEPS,
        "rows": N_ROWS,
        "method": "gausslegendre",
        "reps": reps,
        "warmup": warmup,
        "cases": results,
    }


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table (times in ms, medians), one row per model."""
    head = ("| model | bare (batch) | pellucid (batch) | captum default | captum 200 "
            "| pellucid/bare | pellucid/captum default | pellucid/captum 200 "
            "| captum default/bare | captum 200/bare | max abs diff vs captum |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for c in result["cases"]:
        s, r = c["seconds"], c["ratios"]
        lines.append(
            f"| {c['model']} | {1e3 * s['bare']:.1f} ms ({c['bare_batch']}) "
            f"| {1e3 * s['pellucid']:.1f} ms ({c['pellucid_batch']}) "
            f"| {1e3 * s['captum_default']:.1f} ms | {1e3 * s['captum_200']:.1f} ms "
            + "".join(f"| {r[f'{a}/{b}']:.2f} " for a, b in RATIOS)
            + f"| {c['agreement']['max_abs_diff']:.1e} |"
        )
    bare = ", ".join(
        f"{c['model'].split(' (')[0]}: "
        + " / ".join(f"{b}: {1e3 * c['seconds'][f'bare@{b}']:.1f}" for b in BARE_BATCHES)
        for c in result["cases"]
    )
    lines.append("")
    lines.append(f"bare passes by batch size (ms): {bare}")
    discarded = ", ".join(
        f"{c['model'].split(' (')[0]}: {c['discarded_reps']}" for c in result["cases"]
    )
    lines.append(
        f"IG, {result['steps']} Gauss–Legendre steps x {result['rows']} rows, zero baseline; "
        f"medians of {result['reps']} interleaved repetitions after {result['warmup']} warm-up "
        f"runs (repetitions rerun because other processes were busy: {discarded})."
    )
    return "\n".join(lines)
