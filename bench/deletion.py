"""Deletion and insertion curves: pellucid against the bare forward passes and against Quantus.

32 images (3, 32, 32) of ``TinyResNet(seed=0)`` in eval mode, one fixed target class per row,
attributions from ``pellucid.saliency`` (a per-pixel map: the channel sum). 64 steps remove (or
reveal) 16 pixels each, so each curve has 65 points and each metric reads 32 · 65 = 2080 rows.
Contenders:

* ``bare@B`` — the least work the curves need: forward passes (no gradients) over the 2080
  precomputed deletion rows in chunks of B rows (B in 32, 65, 130, 260, 520), then the softmax of
  the target. T_bare is the fastest B (by median).
* ``pellucid_deletion`` / ``pellucid_insertion`` —
  ``pellucid.evaluate.deletion(model, e, steps=64)`` / ``insertion(...)``, baseline 0, with the
  default batch size: the rows are built on the fly, chunk by chunk.
* ``pellucid_region`` / ``quantus_region`` — the deletion curve Quantus can draw with 64 steps
  on these images: region perturbation with 4 x 4 patches (64 of them, each step removes one,
  all channels), ``pellucid.evaluate.region_perturbation(model, e, region=4)`` against
  ``quantus.RegionPerturbation(patch_size=4, regions_evaluation=64, perturb_baseline=0.0)`` with
  ``softmax=True``: the same 32 · 65 rows. (Quantus' ``PixelFlipping`` cannot do 64 steps of
  whole pixels here: it checks ``features_in_step`` against H·W = 1024 but removes C·H·W = 3072
  channel entries, so 48 entries per step are refused. Quantus has no insertion metric.)

Before timing, the benchmark checks that all of them compute the same curves. Every repetition
runs every contender once, in an order rotated from one repetition to the next; figures are
medians, ratios medians of per-repetition ratios (see ``_timing.py``).
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _timing import measure, summarize

NAME = "deletion"
STEPS = 64
N_ROWS = 32
BARE_BATCHES = (32, 65, 130, 260, 520)
RATIOS = (
    ("pellucid_deletion", "bare"),
    ("pellucid_insertion", "bare"),
    ("pellucid_region", "bare"),
    ("pellucid_region", "quantus_region"),
    ("quantus_region", "bare"),
)
REGION = 4
LABELS = {"pellucid_deletion": "deletion", "pellucid_insertion": "insertion",
          "pellucid_region": "region", "quantus_region": "quantus region", "bare": "bare"}


def case() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, Any]:
    import pellucid
    from pellucid.zoo import TinyResNet

    model = TinyResNet(seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N_ROWS, 3, 32, 32, generator=gen)
    t = torch.arange(N_ROWS) % 10
    e = pellucid.saliency(model, x, target=t, progress=False)
    e.values = e.values.sum(dim=1, keepdim=True)
    return model, x, t, e


def deletion_rows(x: torch.Tensor, values: torch.Tensor, steps: int) -> torch.Tensor:
    """The n·(steps+1) rows of the deletion curves, precomputed (pixels, most relevant first)."""
    n, pixels = len(x), values[0].numel()
    order = values.reshape(n, -1).argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(pixels).expand(n, -1))
    cut = torch.arange(steps + 1) * pixels // steps
    keep = ranks.view(n, 1, 1, *values.shape[2:]) >= cut.view(1, -1, 1, 1, 1)
    return (x[:, None] * keep).reshape(-1, *x.shape[1:]).contiguous()


def bare_curves(model: torch.nn.Module, rows: torch.Tensor, t: torch.Tensor,
                batch: int) -> torch.Tensor:
    """Softmax probability of the target over all rows, ``batch`` rows per pass."""
    targets = t.repeat_interleave(STEPS + 1)
    probs = []
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            out = model(rows[start:start + batch])
            probs.append(out.softmax(dim=1).gather(1, targets[start:start + batch, None])[:, 0])
    return torch.cat(probs).view(-1, STEPS + 1)


def import_quantus():
    """quantus imports zennit when it is installed, and zennit needs torchvision's ResNet classes:
    the tests' ``import_peer`` lends stand-ins for the import (torchvision does not load here)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import import_peer

    return import_peer("quantus")


def quantus_metric():
    quantus = import_quantus()

    return quantus.RegionPerturbation(patch_size=REGION, regions_evaluation=STEPS,
                                      perturb_baseline=0.0, abs=False, normalise=False,
                                      disable_warnings=True)


def quantus_drops(metric, model, x, t, e) -> np.ndarray:
    """Quantus' region perturbation: ``f(x) − f(x⁽ᵏ⁾)`` for k = 1..64, ``(n, 64)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(metric(
            model=model, x_batch=x.numpy(), y_batch=t.numpy(),
            a_batch=e.values.expand_as(x).numpy().copy(), softmax=True, channel_first=True,
            device="cpu", batch_size=N_ROWS))


def contenders(model, x, t, e) -> dict[str, Callable[[], Any]]:
    from pellucid import evaluate

    rows = deletion_rows(x, e.values, STEPS)
    calls: dict[str, Callable[[], Any]] = {
        f"bare@{b}": (lambda b=b: bare_curves(model, rows, t, b)) for b in BARE_BATCHES
    }
    calls["pellucid_deletion"] = lambda: evaluate.deletion(model, e, steps=STEPS, progress=False)
    calls["pellucid_insertion"] = lambda: evaluate.insertion(model, e, steps=STEPS, progress=False)
    calls["pellucid_region"] = lambda: evaluate.region_perturbation(model, e, region=REGION,
                                                                    progress=False)
    metric = quantus_metric()
    calls["quantus_region"] = lambda: quantus_drops(metric, model, x, t, e)
    return calls


def agreement(model, x, t, e) -> dict[str, float]:
    """Max |difference| of pellucid's deletion curves from the bare ones, and of its region
    perturbation curves from Quantus'."""
    from pellucid import evaluate

    ours = evaluate.deletion(model, e, steps=STEPS, progress=False).curves
    bare = bare_curves(model, deletion_rows(x, e.values, STEPS), t, 260)
    region = evaluate.region_perturbation(model, e, region=REGION, progress=False).curves
    theirs = torch.as_tensor(quantus_drops(quantus_metric(), model, x, t, e), dtype=region.dtype)
    diffs = {"bare": float((ours - bare).abs().max()),
             "quantus": float((region[:, :1] - region[:, 1:] - theirs).abs().max())}
    for name, diff in diffs.items():
        if diff > 1e-5:
            raise RuntimeError(f"pellucid and {name} disagree on the curves (max |difference| "
                               f"{diff:.3g}): they would not be timing the same work")
    return {"max_abs_diff_bare": diffs["bare"], "max_abs_diff_quantus": diffs["quantus"]}


def run(*, reps: int = 11, warmup: int = 2) -> dict[str, Any]:
    """The benchmark, JSON-ready."""
    quantus = import_quantus()
    from pellucid.model import default_batch_size

    model, x, t, e = case()
    entry: dict[str, Any] = {
        "model": "TinyResNet (32, 3, 32, 32)",
        "rows": N_ROWS * (STEPS + 1),
        "pellucid_batch": default_batch_size(x.shape[1:]),
        "agreement": agreement(model, x, t, e),
    }
    entry.update(summarize(measure(contenders(model, x, t, e), reps=reps, warmup=warmup), RATIOS, BARE_BATCHES))
    return {"benchmark": NAME, "steps": STEPS, "rows": N_ROWS, "reps": reps, "warmup": warmup,
            "quantus": quantus.__version__, "cases": [entry]}


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table (times in ms, medians)."""
    head = ("| model | bare (batch) | pellucid deletion (batch) | pellucid insertion "
            "| pellucid region | quantus region "
            + "".join(f"| {LABELS[a]}/{LABELS[b]} " for a, b in RATIOS)
            + "| max abs diff vs bare / quantus |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for c in result["cases"]:
        s, r, agree = c["seconds"], c["ratios"], c["agreement"]
        lines.append(
            f"| {c['model']} | {1e3 * s['bare']:.0f} ms ({c['bare_batch']}) "
            f"| {1e3 * s['pellucid_deletion']:.0f} ms ({c['pellucid_batch']}) "
            f"| {1e3 * s['pellucid_insertion']:.0f} ms | {1e3 * s['pellucid_region']:.0f} ms "
            f"| {1e3 * s['quantus_region']:.0f} ms "
            + "".join(f"| {r[f'{a}/{b}']:.2f} " for a, b in RATIOS)
            + f"| {agree['max_abs_diff_bare']:.1e} / {agree['max_abs_diff_quantus']:.1e} |"
        )
        lines.append("")
        lines.append("bare passes by batch size (ms): " + " / ".join(
            f"{b}: {1e3 * s[f'bare@{b}']:.0f}" for b in BARE_BATCHES))
        lines.append(
            f"{result['steps']} steps x {result['rows']} rows ({c['rows']} rows per curve set), "
            f"baseline 0, softmax of the target; medians of {result['reps']} interleaved "
            f"repetitions after {result['warmup']} warm-up runs (repetitions rerun because other "
            f"processes were busy: {c['discarded_reps']}); quantus {result['quantus']}."
        )
    return "\n".join(lines)
