"""Several methods side by side: one row per input, one column per method."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from matplotlib.figure import Figure

from ..errors import PellucidError
from ._colors import check_sign
from .image import draw, input_picture, relative_colorbar
from .tabular import draw_bars

__all__ = ["compare"]


def _check_same_inputs(expls: list[Any], names: list[str]) -> None:
    first = expls[0]
    for name, e in zip(names[1:], expls[1:]):
        if len(e) != len(first) or tuple(e.inputs.shape) != tuple(first.inputs.shape):
            raise PellucidError(
                f"plot.compare needs explanations of the same inputs; {names[0]!r} has inputs "
                f"shaped {tuple(first.inputs.shape)}, {name!r} has {tuple(e.inputs.shape)}"
            )
        a, b = first.inputs.detach().cpu().double(), e.inputs.detach().cpu().double()
        if not torch.allclose(a, b, rtol=1e-5, atol=1e-6):
            raise PellucidError(
                f"plot.compare needs explanations of the same inputs; {name!r} explains "
                f"different rows from {names[0]!r}"
            )
        if e.kind != first.kind:
            raise PellucidError(
                f"plot.compare cannot mix kinds: {names[0]!r} is {first.kind!r}, {name!r} is "
                f"{e.kind!r}"
            )


def compare(
    explanations: Sequence[Any] | Mapping[str, Any],
    *,
    indices: Sequence[int] | None = None,
    sign: str = "all",
    clip: float = 99.0,
    alpha: float = 0.8,
    show_input: bool = True,
    row_labels: Sequence[str] | None = None,
    top: int = 10,
    cell_size: float = 1.8,
    colorbar: bool = True,
) -> Figure:
    """One grid of several explanations of the same inputs: rows are inputs, columns methods.

    ``explanations`` is a sequence of :class:`~pellucid.Explanation` (columns titled by their
    method names) or a mapping ``{column title: Explanation}`` (to tell apart two runs of one
    method). All must explain the same inputs. Image cells are drawn as by
    :func:`pellucid.plot.image`, each scaled to its own ``clip`` percentile; tabular cells as by
    :func:`pellucid.plot.bars`.

    Options:
        indices: rows to draw (default None: all rows).
        sign, clip, alpha: as for :func:`pellucid.plot.image` (defaults ``"all"``, 99.0, 0.8).
        show_input: images only — a first column with the bare input (default True).
        row_labels: one label per drawn row (default None: ``"target <t>"`` of the first
            explanation; the same for all when each explains the predicted class).
        top: tabular only — features per cell (default 10).
        cell_size: inches per cell (default 1.8).
        colorbar: images only — one shared colorbar reading ``−max … 0 … +max`` (default True).
    """
    check_sign(sign)
    if isinstance(explanations, Mapping):
        names, expls = [str(k) for k in explanations], list(explanations.values())
    else:
        expls = list(explanations)
        names = [e.method or f"explanation {j}" for j, e in enumerate(expls)]
    if not expls:
        raise PellucidError("plot.compare needs at least one explanation")
    _check_same_inputs(expls, names)
    kind = expls[0].kind
    if kind not in ("image", "tabular"):
        raise PellucidError(f"plot.compare draws image and tabular explanations, not {kind!r}")
    rows = list(range(len(expls[0]))) if indices is None else [int(i) for i in indices]
    if not rows:
        raise PellucidError("plot.compare needs at least one row to draw")
    if row_labels is not None and len(row_labels) != len(rows):
        raise PellucidError(f"got {len(row_labels)} row_labels for {len(rows)} rows")
    image = kind == "image"
    lead = int(image and show_input)
    ncols = len(expls) + lead
    width, height = (cell_size, cell_size) if image else (cell_size * 2.2, 0.28 * (top + 1) + 0.8)
    fig = Figure(figsize=(width * ncols + (0.9 if image and colorbar else 0.3),
                          height * len(rows) + 0.4), layout="constrained")
    grid = fig.subplots(len(rows), ncols, squeeze=False)
    for r, i in enumerate(rows):
        label = row_labels[r] if row_labels is not None else f"target {int(expls[0].target[i])}"
        if lead:
            picture, rgb = input_picture(expls[0].inputs[i].detach().cpu().double().numpy())
            ax = grid[r, 0]
            ax.imshow(picture, cmap=None if rgb else "gray_r", vmin=0, vmax=1,
                      interpolation="nearest")  # the bare input at full contrast
            ax.set_xticks([])
            ax.set_yticks([])
        for c, e in enumerate(expls):
            ax = grid[r, c + lead]
            if image:
                draw(ax, e, i, sign=sign, clip=clip, alpha=alpha)
            else:
                draw_bars(ax, e, i, top=top)
        grid[r, 0].set_ylabel(label)
    for c, name in enumerate((["input"] if lead else []) + names):
        grid[0, c].set_title(name.replace("_", " ") if image else name)
    if image and colorbar:
        relative_colorbar(fig, list(grid.ravel()), sign, shrink=min(0.6, 3.0 / len(rows)))
    return fig
