"""Where pellucid's Integrated Gradients spends time beyond the bare passes (not run by run.py).

    .venv/bin/python bench/_ig_profile.py [--reps 9]

1. The fixed cost of one call, piece by piece, on the digits CNN (where it shows most).
2. pellucid as shipped, at fixed batch sizes, and with two changes patched in here (src/ is not
   touched): the quadrature rule cached, and chunks that are balanced and capped lower. Each is
   timed interleaved with the bare passes at the same batch sizes (see ``_timing.py``).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import timeit
from collections.abc import Callable, Iterator
from typing import Any

import ig
import torch
from _timing import cores, measure, median_ratio


@contextlib.contextmanager
def patched(*, cache_rule: bool = False, max_rows: int | None = None,
            balanced: bool = False, skip_ends: bool = False) -> Iterator[None]:
    """pellucid with the proposed changes, undone on exit.

    ``skip_ends`` replaces the forward pass over the 2n rows at the inputs and baselines by zeros:
    the outputs are then wrong, so it only bounds what folding those rows elsewhere could save.
    """
    import pellucid.attribution.integrated as integ
    import pellucid.model as pm

    saved = (integ.path_rule_tensors, pm._MAX_ROWS, pm._chunks, pm.Model.outputs)
    if skip_ends:
        pm.Model.outputs = lambda self, x, **kw: torch.zeros(len(x), 10)
    if cache_rule:
        integ.path_rule_tensors = functools.lru_cache(maxsize=32)(saved[0])
    if max_rows is not None:
        pm._MAX_ROWS = max_rows
    if balanced:
        original = saved[2]

        def chunks(n: int, size: int, *, progress: bool, desc: str) -> Iterator[slice]:
            pieces = -(-n // size)  # as many chunks as before, of equal size
            return original(n, -(-n // pieces), progress=progress, desc=desc)

        pm._chunks = chunks
    try:
        yield
    finally:
        integ.path_rule_tensors, pm._MAX_ROWS, pm._chunks, pm.Model.outputs = saved


def folded_integrated_gradients(model: Any, inputs: Any, *, target: Any = None, steps: int = 50,
                                method: str = "gausslegendre",
                                batch_size: int | None = None) -> Any:
    """pellucid's integrated_gradients with the 2n rows at the inputs and baselines folded into
    the first chunk's forward pass (their outputs come from it; they get no gradient weight),
    instead of a forward pass of their own. Zero baseline only; run inside ``patched``.
    """
    from pellucid.adapters import gradient_model
    from pellucid.attribution import integrated as integ
    from pellucid.explanation import Explanation
    from pellucid.model import gather, select_target

    m = gradient_model(model, "integrated_gradients", batch_size)
    with m.explaining():
        x = m.prepare(inputs, as_float=True)
        alphas, weights = integ.path_rule_tensors(method, steps, device=x.device, dtype=x.dtype)
        base = torch.zeros_like(x)
        n = len(x)
        diff, total = x - base, torch.zeros_like(x)
        shape = (-1,) + (1,) * (x.dim() - 1)
        t = outputs = baseline_outputs = None
        for s, _ in m.chunks(n * steps, x.shape[1:], batch_size=batch_size, progress=False,
                          desc="integrated_gradients"):
            flat = torch.arange(s.start, s.stop, device=x.device)
            rows, k = flat // steps, flat % steps
            points = base[rows] + alphas[k].view(shape) * diff[rows]
            lead = 0 if t is not None else 2 * n
            if lead:
                points = torch.cat([x, base, points])
            points.requires_grad_(True)
            with torch.enable_grad():
                out = m.forward(points)
                if lead:
                    ends = out[:lead].detach()
                    t = select_target(ends[:n], target)
                    outputs, baseline_outputs = gather(ends[:n], t), gather(ends[n:], t)
                (grads,) = torch.autograd.grad(gather(out[lead:], t[rows]).sum(), points)
            total.index_add_(0, rows, grads[lead:] * weights[k].view(shape))
    return Explanation(values=diff * total, inputs=x, target=t, outputs=outputs,
                       baseline_outputs=baseline_outputs, method="integrated_gradients")


def pieces(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> dict[str, float]:
    """Best-of-5 microseconds of each fixed-cost piece of one integrated_gradients call."""
    import pellucid
    from pellucid._common import resolve_baseline
    from pellucid.adapters import wrap
    from pellucid.attribution._path import path_rule_tensors
    from pellucid.explanation import Explanation
    from pellucid.model import select_target

    m = wrap(model)
    base = resolve_baseline(None, x)
    ends = m.outputs(torch.cat([x, base]), progress=False)

    def explaining() -> None:
        with m.explaining():
            pass

    alphas, weights = path_rule_tensors("gausslegendre", ig.STEPS, device=x.device, dtype=x.dtype)
    diff, total, shape = x - base, torch.zeros_like(x), (-1,) + (1,) * (x.dim() - 1)
    flat = torch.arange(0, 400)
    _rows, _k = flat // ig.STEPS, flat % ig.STEPS
    grads = torch.randn(400, *x.shape[1:])

    def chunk_bookkeeping() -> None:  # per chunk of 400 path rows, besides the passes
        f = torch.arange(0, 400)
        r, kk = f // ig.STEPS, f % ig.STEPS
        base[r] + alphas[kk].view(shape) * diff[r]
        total.index_add_(0, r, grads * weights[kk].view(shape))

    points, targets = ig.path_rows(x, t, ig.STEPS)

    def frozen_bare() -> None:
        with ig.frozen(model):
            ig.bare_gradients(model, points, targets, 400)

    calls: dict[str, Callable[[], Any]] = {
        "path_rule_tensors (leggauss)": lambda: path_rule_tensors(
            "gausslegendre", ig.STEPS, device=x.device, dtype=x.dtype),
        "wrap + prepare": lambda: wrap(model).prepare(x, as_float=True),
        "explaining() enter + exit": explaining,
        "outputs at x and baseline (2n rows)": lambda: m.outputs(torch.cat([x, base]),
                                                                 progress=False),
        "select_target + gather": lambda: select_target(ends[:len(x)], t),
        "per-chunk points + index_add_ (400 rows)": chunk_bookkeeping,
        "Explanation(...)": lambda: Explanation(values=x, inputs=x, target=t, outputs=t,
                                                baseline_outputs=t, method="ig"),
        "whole call (batch_size=400)": lambda: pellucid.integrated_gradients(
            model, x, target=t, steps=ig.STEPS, progress=False, batch_size=400),
        "bare passes (batch 400, parameters frozen)": frozen_bare,
    }
    out = {}
    for name, call in calls.items():
        call()
        number = 5 if name.startswith(("whole", "bare")) else 50
        out[name] = 1e6 * min(timeit.repeat(call, number=number, repeat=5)) / number
    return out


def variants(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor,
             batches: tuple[int, ...]) -> dict[str, Callable[[], Any]]:
    import pellucid

    points, targets = ig.path_rows(x, t, ig.STEPS)

    def bare(b: int) -> Callable[[], Any]:
        def run() -> Any:
            with ig.frozen(model):
                return ig.bare_gradients(model, points, targets, b)
        return run

    def pel(batch_size: int | None = None, **kw: Any) -> Callable[[], Any]:
        def run() -> Any:
            with patched(**kw):
                return pellucid.integrated_gradients(model, x, target=t, steps=ig.STEPS,
                                                     progress=False, batch_size=batch_size)
        return run

    calls = {f"bare@{b}": bare(b) for b in batches}
    calls["pellucid"] = pel()
    calls.update({f"pellucid@{b}": pel(b) for b in batches})
    calls["A: cached rule"] = pel(cache_rule=True)
    calls["B: A + balanced chunks, max 512 rows"] = pel(cache_rule=True, max_rows=512,
                                                        balanced=True)
    calls["C: B without the 2n forward (bound)"] = pel(cache_rule=True, max_rows=512, balanced=True,
                                                       skip_ends=True)
    def folded() -> Any:
        with patched(cache_rule=True, max_rows=512, balanced=True):
            return folded_integrated_gradients(model, x, target=t, steps=ig.STEPS)

    calls["D: B with the 2n rows folded into chunk 1"] = folded
    return calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(cores())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    _, model, x, t = ig.digits_case()
    print("\nfixed cost of one call on the digits CNN (best of 5, microseconds):")
    for name, us in pieces(model, x, t).items():
        print(f"  {name:44s} {us:9.1f}")

    for case, batches in ((ig.digits_case, (200, 400, 800)), (ig.resnet_case, (85, 100, 200))):
        label, model, x, t = case()
        got = measure(variants(model, x, t, batches), reps=args.reps, warmup=1)
        times = got["times"]
        best = min(batches, key=lambda b: statistics.median(times[f"bare@{b}"]))
        print(f"\n{label}: medians of {args.reps} reps ({got['discarded']} rerun); "
              f"ratios are medians of per-rep ratios to bare@{best}")
        for name, ts in times.items():
            print(f"  {name:36s} {1e3 * statistics.median(ts):8.1f} ms  (min {1e3 * min(ts):8.1f})"
                  f"  x{median_ratio(ts, times[f'bare@{best}']):.3f}")


if __name__ == "__main__":
    main()
