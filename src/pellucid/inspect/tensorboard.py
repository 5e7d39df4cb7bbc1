"""``inspect.tensorboard``: weight histograms, the model graph and attribution pictures for TensorBoard.

Written through ``torch.utils.tensorboard`` (needs the ``tensorboard`` package: extra
``pellucid[tensorboard]``). Each explanation's rows are drawn with :func:`pellucid.plot.explanation`
and stored as images under ``explanations/<method>/<row>``; each parameter's histogram under
``weights/<name>`` and its L2 norm as a scalar under ``weight_norm/<name>``. The graph is traced
with ``torch.jit.trace`` on ``inputs`` in eval mode; the model is left as found.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._deprecation import renamed
from .._state import preserved
from ..errors import PellucidError

__all__ = ["tensorboard", "summary_writer", "write_step"]


def summary_writer(logdir: str | Path) -> Any:
    """A ``SummaryWriter`` for ``logdir``, with a clear error when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # torch raises ImportError when the tensorboard package is absent
        raise PellucidError(
            "TensorBoard export needs the tensorboard package: pip install 'pellucid[tensorboard]' "
            f"(or pip install tensorboard) — {err}"
        ) from err
    return SummaryWriter(log_dir=str(logdir))


def write_step(writer: Any, model: nn.Module | None, step: int, explanations: Iterable[Any] = (),
               *, max_rows: int = 8) -> None:
    """Write weight histograms and norms of ``model`` and pictures of ``explanations`` at ``step``."""
    from .. import plot
    from ..plot.inspect import figure_pixels

    if model is not None:
        for name, p in model.named_parameters():
            w = p.detach().cpu().float()
            if w.numel():
                writer.add_histogram(f"weights/{name}", w, step)
                writer.add_scalar(f"weight_norm/{name}", float(w.norm()), step)
    for expl in explanations:
        for i in range(min(len(expl.values), max_rows)):
            fig = plot.explanation(expl, i)
            writer.add_image(f"explanations/{expl.method or 'explanation'}/{i}", figure_pixels(fig),
                             step, dataformats="HWC")


@renamed(example_inputs="inputs")
def tensorboard(
    model: nn.Module, logdir: str | Path, *, explanations: Iterable[Any] = (), inputs: Any = None,
    step: int = 0, max_rows: int = 8,
) -> Path:
    """Write ``model``'s weights (and graph, given ``inputs``) and ``explanations`` to ``logdir``.

    ``inputs``: a tensor (or tuple of tensors) the model accepts, to trace the graph with (old
    name ``example_inputs``, deprecated). ``max_rows``: rows of each explanation drawn. Open with
    ``tensorboard --logdir <logdir>``. Returns the log directory.

    Example:
        >>> import torch, tempfile
        >>> path = tensorboard(torch.nn.Linear(3, 2), tempfile.mkdtemp())  # doctest: +SKIP
    """
    if isinstance(explanations, (str, bytes)) or not hasattr(explanations, "__iter__"):
        raise PellucidError("explanations must be a list of Explanation objects")
    explanations = list(explanations)
    writer = summary_writer(logdir)
    try:
        write_step(writer, model, step, explanations, max_rows=max_rows)
        if inputs is not None:
            args = inputs if isinstance(inputs, tuple) else (inputs,)
            with preserved(model), warnings.catch_warnings():
                # add_graph goes through torch.jit.trace, which torch 2.9+ marks deprecated;
                # TensorBoard has no other route to a graph, so the warning says nothing useful.
                warnings.simplefilter("ignore", DeprecationWarning)
                model.eval()
                with torch.no_grad():
                    writer.add_graph(model, args)
    finally:
        writer.close()
    return Path(logdir)
