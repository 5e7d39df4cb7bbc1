"""Model-agnostic methods: pellucid against the bare passes, shap, lime and Captum.

Four workloads (issue 4), each timed side by side in one run:

* ``kernel_shap`` — a 20-feature MLP (20-64-64-2, ReLU), 20 rows, 50 background rows, 1024
  coalitions per row: 20·1024·50 = 1,024,000 model rows.
* ``lime`` — the same MLP, 20 rows, 5000 samples per row: 100,000 model rows.
* ``exact_shapley`` — a 10-feature MLP (10-64-64-2), 20 rows, 50 background rows: all 1022
  proper coalitions, 1,022,000 model rows.
* ``occlusion`` — a small CNN on 8 images 3x32x32, a 3x4x4 window at stride 1 (Captum's
  default): 841 windows, 6,728 model rows.

Contenders: ``bare@B`` is the floor — the forward passes alone over a tensor of that many rows,
already built, ``B`` rows per pass; T_bare is the fastest ``B``. ``pellucid`` runs with its
default batch size, ``pellucid@B`` with ``batch_size=B``. The peers run at the same number of
samples: shap's ``KernelExplainer`` and ``ExactExplainer``, ``lime.lime_tabular`` (continuous
sampling, the scheme pellucid's tabular LIME follows), Captum's ``KernelShap``, ``Lime`` and
``Occlusion``. Slow peers explain fewer rows (``peer_rows``) and their time is scaled to all rows
(they loop over rows, so their time is linear in them); the table says so.

Error columns: Kernel SHAP against a reference of pellucid's ``kernel_shap`` at 65,536 coalitions
on the same rows (its standard errors are reported; exact values for 20 features would take
2^20 coalitions); Captum's KernelShap takes one baseline, not a background, so it is given the
background mean and measured against the exact values of that game. LIME against pellucid's
LIME at 100,000 samples (the same scheme as ``lime_tabular`` with ``discretize_continuous=False``);
Captum's Lime fits a different surrogate (binary masks, Lasso), so it has no error figure. Exact
Shapley and occlusion: the largest difference to the peer, which computes the same quantity.
"""
from __future__ import annotations

import os
import statistics
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _timing import measure, median_ratio
from torch import nn

os.environ.setdefault("PELLUCID_PROGRESS", "0")

NAME = "shapley"
N_ROWS, N_BG = 20, 50
BARE_BATCHES = (512, 4096, 32768)
#: Repetitions during which other processes used more of the machine are rerun (see _timing.py);
#: on a shared machine set BENCH_MAX_OTHER=1 to keep every repetition (and say so).
MAX_OTHER = float(os.environ.get("BENCH_MAX_OTHER", "0.25"))


def _mlp(d: int) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    return net.eval().requires_grad_(False)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(32 * 8 * 8, 10))
    return net.eval().requires_grad_(False)


def _tabular(d: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(N_ROWS, d, generator=g), torch.randn(N_BG, d, generator=g) + 0.3


def _bare(model: nn.Module, rows: int, row_shape: tuple[int, ...],
          batches: tuple[int, ...] = BARE_BATCHES) -> dict[str, Callable[[], Any]]:
    data = torch.randn(rows, *row_shape, generator=torch.Generator().manual_seed(1))

    def at(b: int) -> Callable[[], Any]:
        def run() -> None:
            with torch.no_grad():
                for s in range(0, rows, b):
                    model(data[s:s + b])
        return run
    return {f"bare@{b}": at(b) for b in batches}


def _np(model: nn.Module, target: int) -> Callable[[np.ndarray], np.ndarray]:
    def f(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(a, dtype=torch.float32))[:, target].numpy()
    return f


def _rms(a: Any, b: torch.Tensor) -> float:
    return float((torch.as_tensor(np.asarray(a), dtype=torch.float64) - b.double()).pow(2).mean().sqrt())


# -- workloads: (contenders, scale factors, errors, description) ----------------------------------

def kernel_case() -> dict[str, Any]:
    import captum.attr
    import shap

    import pellucid

    d, samples, peer_rows, captum_rows = 20, 1024, 4, 2
    net, (x, bg) = _mlp(d), _tabular(d)
    f = _np(net, 1)
    calls = _bare(net, N_ROWS * samples * N_BG, (d,))
    calls["pellucid"] = lambda: pellucid.kernel_shap(net, x, background=bg, samples=samples,
                                                     target=1, seed=0, progress=False)
    calls["pellucid@32768"] = lambda: pellucid.kernel_shap(
        net, x, background=bg, samples=samples, target=1, seed=0, progress=False, batch_size=32768)
    explainer = shap.KernelExplainer(f, bg.numpy())
    calls["shap_kernel"] = lambda: explainer.shap_values(x[:peer_rows].numpy(), nsamples=samples,
                                                         silent=True)
    ks = captum.attr.KernelShap(net)
    base = bg.mean(0, keepdim=True)
    calls["captum_kernelshap"] = lambda: ks.attribute(x[:captum_rows], baselines=base, target=1,
                                                      n_samples=samples)
    # errors
    ref = pellucid.kernel_shap(net, x[:peer_rows], background=bg, samples=1 << 16, target=1, seed=1)
    ours = pellucid.kernel_shap(net, x[:peer_rows], background=bg, samples=samples, target=1, seed=0)
    np.random.seed(0)
    sv_default = explainer.shap_values(x[:peer_rows].numpy(), nsamples=samples, silent=True)
    np.random.seed(0)
    sv_full = explainer.shap_values(x[:peer_rows].numpy(), nsamples=samples, silent=True, l1_reg=False)
    exact_mean = pellucid.exact_shapley(net, x[:captum_rows], background=base, target=1).values
    theirs = ks.attribute(x[:captum_rows], baselines=base, target=1, n_samples=samples)
    return {
        "label": "Kernel SHAP: MLP 20 features, 20 rows x 1024 coalitions x 50 background",
        "model_rows": N_ROWS * samples * N_BG, "calls": calls,
        "scale": {"shap_kernel": N_ROWS / peer_rows, "captum_kernelshap": N_ROWS / captum_rows},
        "peers": ("shap_kernel", "captum_kernelshap"),
        "errors": {
            "pellucid": _rms(ours.values, ref.values),
            "shap_kernel": _rms(sv_default, ref.values),
            "shap_kernel (l1_reg=False)": _rms(sv_full, ref.values),
            "captum_kernelshap (vs its one-baseline game)": _rms(theirs, exact_mean),
            "reference max standard error": float(ref.per_row["standard_errors"].max()),
            "shap_kernel nonzero values per row (of 20)": float((np.abs(sv_default) > 0).sum(1).mean()),
        },
        "error_kind": "RMS vs reference",
    }


def lime_case() -> dict[str, Any]:
    import captum.attr
    from lime.lime_tabular import LimeTabularExplainer

    import pellucid

    d, samples, peer_rows, captum_rows = 20, 5000, 4, 1
    net, (x, bg) = _mlp(d), _tabular(d)
    f = _np(net, 1)
    calls = _bare(net, N_ROWS * samples, (d,))
    calls["pellucid"] = lambda: pellucid.lime(net, x, background=bg, samples=samples, target=1,
                                              seed=0, progress=False)
    calls["pellucid@32768"] = lambda: pellucid.lime(net, x, background=bg, samples=samples,
                                                    target=1, seed=0, progress=False, batch_size=32768)
    explainer = LimeTabularExplainer(bg.numpy(), discretize_continuous=False, mode="regression",
                                     random_state=0)

    def lime_run(rows: int = peer_rows) -> np.ndarray:
        out = np.zeros((rows, d))
        for i in range(rows):  # lime explains one row per call
            res = explainer.explain_instance(x[i].numpy(), f, num_features=d, num_samples=samples)
            for j, v in res.local_exp[1]:
                out[i, j] = v
        return out

    calls["lime_tabular"] = lime_run
    cl = captum.attr.Lime(net)
    calls["captum_lime"] = lambda: cl.attribute(x[:captum_rows], target=1, n_samples=samples)
    ref = pellucid.lime(net, x[:peer_rows], background=bg, samples=100_000, target=1, seed=1)
    ours = pellucid.lime(net, x[:peer_rows], background=bg, samples=samples, target=1, seed=0)
    return {
        "label": "LIME: MLP 20 features, 20 rows x 5000 samples",
        "model_rows": N_ROWS * samples, "calls": calls,
        "scale": {"lime_tabular": N_ROWS / peer_rows, "captum_lime": N_ROWS / captum_rows},
        "peers": ("lime_tabular", "captum_lime"),
        "errors": {"pellucid": _rms(ours.values, ref.values),
                   "lime_tabular": _rms(lime_run(), ref.values)},
        "error_kind": "RMS vs pellucid at 100k samples",
    }


def exact_case() -> dict[str, Any]:
    import shap

    import pellucid

    d, peer_rows = 10, 2
    net, (x, bg) = _mlp(d), _tabular(d)
    f = _np(net, 1)
    calls = _bare(net, N_ROWS * (2 ** d - 2) * N_BG, (d,))
    calls["pellucid"] = lambda: pellucid.exact_shapley(net, x, background=bg, target=1,
                                                       progress=False)
    calls["pellucid@32768"] = lambda: pellucid.exact_shapley(net, x, background=bg, target=1,
                                                             progress=False, batch_size=32768)
    explainer = shap.ExactExplainer(f, shap.maskers.Independent(bg.numpy(), max_samples=N_BG))
    calls["shap_exact"] = lambda: explainer(x[:peer_rows].numpy())
    ours = pellucid.exact_shapley(net, x[:peer_rows], background=bg, target=1).values
    theirs = explainer(x[:peer_rows].numpy()).values
    return {
        "label": "exact Shapley: MLP 10 features, 20 rows x 1022 coalitions x 50 background",
        "model_rows": N_ROWS * (2 ** d - 2) * N_BG, "calls": calls,
        "scale": {"shap_exact": N_ROWS / peer_rows}, "peers": ("shap_exact",),
        "errors": {"max |pellucid - shap_exact|": float(np.abs(ours.numpy() - theirs).max())},
        "error_kind": "max abs difference",
    }


def occlusion_case() -> dict[str, Any]:
    import captum.attr

    import pellucid

    net = _cnn()
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    windows = 29 * 29
    # pellucid's default for 3x32x32 rows is 85 rows per pass (2**18 elements); bare gets it too
    calls = _bare(net, 8 * windows, (3, 32, 32), batches=(85, 512, 4096))
    calls["pellucid"] = lambda: pellucid.occlusion(net, x, window=(3, 4, 4), target=1,
                                                   progress=False)
    occ = captum.attr.Occlusion(net)
    calls["captum_occlusion"] = lambda: occ.attribute(x, sliding_window_shapes=(3, 4, 4), target=1)
    calls["captum_occlusion@64"] = lambda: occ.attribute(x, sliding_window_shapes=(3, 4, 4),
                                                         target=1, perturbations_per_eval=64)
    ours = pellucid.occlusion(net, x, window=(3, 4, 4), target=1).values
    theirs = occ.attribute(x, sliding_window_shapes=(3, 4, 4), target=1)
    return {
        "label": "occlusion: CNN, 8 images 3x32x32, window 3x4x4, stride 1 (841 windows)",
        "model_rows": 8 * windows, "calls": calls, "scale": {},
        "peers": ("captum_occlusion", "captum_occlusion@64"),
        "errors": {"max |pellucid - captum|": float((ours - theirs).abs().max())},
        "error_kind": "max abs difference",
    }


CASES = (kernel_case, lime_case, exact_case, occlusion_case)
if os.environ.get("BENCH_CASES"):  # e.g. BENCH_CASES=kernel,occlusion
    CASES = tuple(c for c in CASES if c.__name__.split("_")[0] in os.environ["BENCH_CASES"].split(","))


def run(*, reps: int = 7, warmup: int = 1) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    results = []
    for case in CASES:
        c = case()
        measured = measure(c["calls"], reps=reps, warmup=warmup, max_other=MAX_OTHER, patience=60.0)
        times = {k: [t * c["scale"].get(k, 1.0) for t in ts] for k, ts in measured["times"].items()}
        medians = {k: statistics.median(ts) for k, ts in times.items()}
        bares = [k for k in times if k.startswith("bare@")]
        best = min(bares, key=lambda k: medians[k])
        times["bare"] = times[best]
        ratios = {f"{k}/bare": median_ratio(times[k], times["bare"])
                  for k in times if not k.startswith("bare")}
        for peer in c["peers"]:
            ratios[f"pellucid/{peer}"] = median_ratio(times["pellucid"], times[peer])
        results.append({
            "workload": c["label"], "model_rows": c["model_rows"], "bare_batch": best,
            "seconds": {**medians, "bare": medians[best]}, "ratios": ratios,
            "scaled": c["scale"], "errors": c["errors"], "error_kind": c["error_kind"],
            "discarded_reps": measured["discarded"], "other_load": measured["other"],
        })
    return {"benchmark": NAME, "reps": reps, "warmup": warmup, "max_other": MAX_OTHER,
            "cases": results}


def markdown(result: dict[str, Any]) -> str:
    lines = []
    for c in result["cases"]:
        s, r = c["seconds"], c["ratios"]
        lines.append(f"**{c['workload']}** ({c['model_rows']:,} model rows; floor = bare passes "
                     f"at {c['bare_batch'].split('@')[1]} rows each)\n")
        lines.append("| contender | seconds | ÷ floor | pellucid ÷ it |")
        lines.append("| --- | --- | --- | --- |")
        for k in s:
            if k.startswith("bare@"):
                continue
            scaled = f" (x{c['scaled'][k]:.0f} scaled)" if k in c["scaled"] else ""
            vs = f"{r[f'pellucid/{k}']:.3f}" if f"pellucid/{k}" in r else ""
            ratio = f"{r[f'{k}/bare']:.2f}" if k != "bare" else "1"
            lines.append(f"| {k}{scaled} | {s[k]:.3f} | {ratio} | {vs} |")
        errs = "; ".join(f"{k}: {v:.2g}" for k, v in c["errors"].items())
        lines.append(f"\n{c['error_kind']}: {errs}\n")
    lines.append(f"Medians of {result['reps']} interleaved repetitions after {result['warmup']} "
                 "warm-up run(s); ratios are medians of per-repetition ratios; repetitions rerun "
                 "because of other load: "
                 + ", ".join(str(c["discarded_reps"]) for c in result["cases"]) + ".")
    return "\n".join(lines)
