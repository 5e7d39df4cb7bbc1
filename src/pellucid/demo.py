"""The demo: explain a few handwritten digits with every attribution method, and write pictures.

``run_demo()`` (and ``pellucid demo``) trains or loads the zoo's digits CNN, explains ``n`` test
digits of different classes with each gradient method, and writes one PNG per method, a grid
comparing them, and an ``index.html`` that embeds every picture (it opens from disk anywhere).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from ._common import check_positive_int
from .errors import InputError

__all__ = ["run_demo", "DEMO_METHODS"]

#: The methods the demo runs, with the options it gives each (the CNN's last conv for CAMs).
DEMO_METHODS: dict[str, dict[str, Any]] = {
    "saliency": {},
    "gradient_x_input": {},
    "integrated_gradients": {"steps": 32},
    "smoothgrad": {"seed": 0},
    "grad_cam": {"layer": "features.2"},
    "grad_cam_pp": {"layer": "features.2"},
    "lrp": {"composite": "epsilon_plus_flat"},
    "deeplift": {},
    "guided_backprop": {},
}


def pick_digits(labels: torch.Tensor, n: int) -> list[int]:
    """Indices of ``n`` rows with labels 0, 1, …, 9, 0, … in turn (first unused row of each)."""
    n = check_positive_int(n, "n")
    by_class = {c: (labels == c).nonzero().flatten().tolist() for c in range(10)}
    picked: list[int] = []
    for k in range(n):
        rows = by_class[k % 10]
        if k // 10 < len(rows):
            picked.append(rows[k // 10])
    if len(picked) < n:
        raise InputError(
            f"the test set has too few digits of some class to pick {n}; ask for fewer"
        )
    return picked


def run_demo(
    out_dir: str | os.PathLike = "pellucid-demo",
    *,
    n: int = 6,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Explain ``n`` test digits with every demo method and write the pictures to ``out_dir``.

    Loads the zoo's digits CNN (training it in a few seconds on first use; see
    :func:`pellucid.zoo.digits_cnn`), picks ``n`` test digits of different classes (the first
    0, 1, 2, …), and runs :data:`DEMO_METHODS` on them. Writes ``<method>.png`` for each method
    (the ``n`` digits in a row), ``compare.png`` (rows: digits, columns: methods) and a
    self-contained ``index.html`` (pictures embedded as data URIs; a table of the model's
    accuracy, each method's wall time and the true and predicted labels).

    Options:
        out_dir: folder to write into, created if missing (default ``"pellucid-demo"``).
        n: how many digits to explain (default 6).
        cache_dir: where the CNN's weights are cached (default None: the zoo's default,
            ``$PELLUCID_CACHE`` or ``~/.cache/pellucid``).
        progress: show progress bars (default None: on unless ``PELLUCID_PROGRESS=0``).

    Returns a dict: ``out_dir`` (absolute Path), ``accuracy`` (test accuracy of the CNN),
    ``files`` (Paths written), ``seconds`` (method name -> wall time), ``indices`` (test rows
    explained), ``true`` and ``predicted`` (their labels) and ``total_seconds``.
    """
    from . import plot, zoo
    from .attribution import saliency
    from .registry import explain

    clock = time.perf_counter()
    data = zoo.load_digits()
    indices = pick_digits(data.y_test, n)  # first, so a bad n fails before any work
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    model, info = zoo.digits_cnn(cache_dir=cache_dir)
    x, true = data.x_test[indices], data.y_test[indices].tolist()

    saliency(model, x[:1], progress=False)  # warm-up, so the first method's time is fair
    expls = {name: explain(model, x, method=name, progress=progress, **params)
             for name, params in DEMO_METHODS.items()}
    predicted = next(iter(expls.values())).target.tolist()
    labels = [f"true {t} · pred {p}" for t, p in zip(true, predicted)]

    figures: dict[str, Any] = {}
    for name, expl in expls.items():
        figures[name] = plot.images(expl, labels=labels, title=_heading(name, expl), ncols=min(n, 10))
    figures["compare"] = plot.compare(list(expls.values()), row_labels=labels)
    files = [_save(fig, out / f"{name}.png") for name, fig in figures.items()]

    seconds = {name: float(e.meta.get("seconds", float("nan"))) for name, e in expls.items()}
    index = _page(out / "index.html", info["test_accuracy"], seconds, expls, indices, true, predicted,
                  figures)
    files.append(index)
    return {
        "out_dir": out,
        "accuracy": float(info["test_accuracy"]),
        "files": files,
        "seconds": seconds,
        "indices": indices,
        "true": true,
        "predicted": predicted,
        "total_seconds": time.perf_counter() - clock,
    }


def _heading(name: str, expl: Any) -> str:
    shown = {k: v for k, v in expl.params.items() if k in DEMO_METHODS[name]}
    options = ", ".join(f"{k}={v}" for k, v in shown.items())
    return f"{name}({options})" if options else name


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110, facecolor="white")
    return path


def _page(
    path: Path, accuracy: float, seconds: dict[str, float], expls: dict[str, Any],
    indices: list[int], true: list[int], predicted: list[int], figures: dict[str, Any],
) -> Path:
    """The demo's page, through :func:`pellucid.report` (one self-contained file)."""
    from .registry import get
    from .reporting import report

    methods = [{"method": name, "what it computes": get(name).summary.replace("``", ""),
                "wall time (s)": round(s, 4)} for name, s in seconds.items()]
    digits = [{"panel": k + 1, "test row": row, "true label": t, "predicted": p}
              for k, (row, t, p) in enumerate(zip(indices, true, predicted))]
    compare_caption = (
        "All methods side by side: one row per digit, one column per method. Red raised the "
        "predicted class's logit, blue lowered it (saliency and SmoothGrad show gradient magnitudes "
        "and the CAMs keep the positive part, so they are red only); each panel is scaled to its "
        "own 99th percentile of |attribution|.")
    items = [
        ("The model", [{"model": "DigitsCNN (zoo)", "test accuracy": f"{accuracy:.4f}"}]),
        ("Methods", methods),
        ("Digits", digits),
        ("All methods side by side", [compare_caption, figures["compare"]]),
    ]
    items += [(_heading(name, expl), [f"{_heading(name, expl)} on the {len(true)} digits.", figures[name]])
              for name, expl in expls.items()]
    return report(
        items, path, title="pellucid demo: why did the CNN read these digits as it did?",
        description=f"A small CNN trained on the 8x8 handwritten digits (scikit-learn's copy of the "
                    f"UCI set), explained with {len(expls)} attribution methods.")
