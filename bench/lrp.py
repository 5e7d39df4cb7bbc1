"""LRP on TinyResNet: pellucid against one plain forward+backward, against Zennit and Captum.

16 seeded ``randn`` rows (16, 3, 32, 32), one fixed target class per row, ``TinyResNet(seed=0)``
in eval mode. Contenders:

* ``bare`` — one plain forward and backward of the same batch: ``torch.autograd.grad(out.gather(1,
  t).sum(), x)`` with the parameters frozen (as pellucid freezes them). The unit of the ratios.
* ``pellucid_<composite>`` — ``pellucid.lrp(model, x, target=t, composite=...)`` for
  ``epsilon_plus_flat`` (the default) and ``epsilon``.
* ``zennit_<composite>`` — ``zennit.attribution.Gradient(model, composite)`` with the same
  composite and Zennit's ``SequentialMergeBatchNorm`` canonizer, called on the batch with the
  one-hot output (the way a Zennit user runs it). Zennit sees modules only: TinyResNet's residual
  ``out + identity`` is a plain gradient and the BatchNorms inside the blocks (not in a
  ``Sequential``) stay unmerged, so its numbers differ; the timing is what is compared here (the
  tests show equality with Zennit on a VGG-style CNN).
* ``captum_epsilon`` — ``captum.attr.LRP(model).attribute(x, target=t)`` (ε-rule on every layer).

Every repetition runs every contender once, in rotated order; figures are medians, ratios the
medians of per-repetition ratios (see ``_timing.py``).
"""
from __future__ import annotations

import statistics
import sys
import types
from collections.abc import Callable
from typing import Any

import torch
from _timing import measure, median_ratio
from torch import nn

from pellucid._state import explaining

NAME = "lrp"
N_ROWS = 16
COMPOSITES = ("epsilon_plus_flat", "epsilon")


def _zennit():
    try:
        import torchvision.models.resnet  # noqa: F401
    except Exception:  # stand-ins: Zennit imports torchvision's block classes at import time
        tv, models, resnet = (types.ModuleType(n) for n in
                              ("torchvision", "torchvision.models", "torchvision.models.resnet"))
        resnet.BasicBlock = type("BasicBlock", (nn.Module,), {"expansion": 1})
        resnet.Bottleneck = type("Bottleneck", (nn.Module,), {"expansion": 4})
        tv.models, models.resnet = models, resnet
        stubs = {"torchvision": tv, "torchvision.models": models,
                 "torchvision.models.resnet": resnet}
        sys.modules.update(stubs)
        try:
            import zennit.torchvision  # noqa: F401  (the module that needs them)
        finally:
            for name in stubs:
                sys.modules.pop(name, None)
    import zennit.attribution
    import zennit.canonizers
    import zennit.composites
    return zennit


def contenders(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> dict[str, Callable[[], Any]]:
    import pellucid

    zennit = _zennit()
    onehot = torch.eye(10)[t]

    def bare() -> torch.Tensor:
        with explaining(model):
            xs = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(model(xs).gather(1, t[:, None]).sum(), xs)
        return g

    def zennit_call(composite_cls) -> Callable[[], Any]:
        def run() -> torch.Tensor:
            composite = composite_cls(canonizers=[zennit.canonizers.SequentialMergeBatchNorm()])
            with zennit.attribution.Gradient(model=model, composite=composite) as attributor:
                _, relevance = attributor(x, onehot)
            return relevance
        return run

    calls: dict[str, Callable[[], Any]] = {"bare": bare}
    for name in COMPOSITES:
        calls[f"pellucid_{name}"] = (lambda n: lambda: pellucid.lrp(
            model, x, target=t, composite=n, progress=False).values)(name)
    calls["zennit_epsilon_plus_flat"] = zennit_call(zennit.composites.EpsilonPlusFlat)

    def zennit_epsilon(canonizers):
        from zennit.rules import Epsilon
        from zennit.types import Convolution
        return zennit.composites.LayerMapComposite(
            layer_map=zennit.composites.layer_map_base() + [(Convolution, Epsilon()),
                                                            (nn.Linear, Epsilon())],
            canonizers=canonizers)
    calls["zennit_epsilon"] = zennit_call(zennit_epsilon)
    try:
        import captum.attr
        lrp = captum.attr.LRP(model)
        lrp.attribute(x[:2], target=t[:2])
        calls["captum_epsilon"] = lambda: lrp.attribute(x, target=t)
    except Exception as err:  # Captum's LRP refuses some layers
        print(f"captum LRP skipped: {err}")
    return calls


def run(*, reps: int = 11, warmup: int = 2) -> dict[str, Any]:
    from pellucid.zoo import TinyResNet

    model = TinyResNet(seed=0).eval()
    x = torch.randn(N_ROWS, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    t = torch.arange(N_ROWS) % 10
    calls = contenders(model, x, t)
    measured = measure(calls, reps=reps, warmup=warmup)
    times = measured["times"]
    ratios = {f"{name}/bare": median_ratio(times[name], times["bare"]) for name in times if name != "bare"}
    for name in COMPOSITES:
        if f"zennit_{name}" in times:
            ratios[f"pellucid_{name}/zennit_{name}"] = median_ratio(
                times[f"pellucid_{name}"], times[f"zennit_{name}"])
    return {
        "benchmark": NAME, "model": "TinyResNet (16, 3, 32, 32)", "reps": reps, "warmup": warmup,
        "seconds": {name: statistics.median(ts) for name, ts in times.items()},
        "ratios": ratios, "discarded_reps": measured["discarded"],
        "other_load": measured["other"], "runs": times,
    }


def markdown(result: dict[str, Any]) -> str:
    s, r = result["seconds"], result["ratios"]
    lines = ["| contender | median time | ÷ bare forward+backward | ÷ Zennit, same composite |",
             "| --- | --- | --- | --- |"]
    for name in s:
        vs_bare = "1" if name == "bare" else f"{r[f'{name}/bare']:.2f}"
        comp = name.split("_", 1)[1] if "_" in name else ""
        vs_z = r.get(f"{name}/zennit_{comp}") if name.startswith("pellucid") else None
        lines.append(f"| {name} | {1e3 * s[name]:.1f} ms | {vs_bare} | "
                     f"{'' if vs_z is None else f'{vs_z:.2f}'} |")
    lines.append("")
    lines.append(f"{result['model']}; medians of {result['reps']} interleaved repetitions after "
                 f"{result['warmup']} warm-up runs ({result['discarded_reps']} repetitions rerun "
                 "because other processes were busy).")
    return "\n".join(lines)
