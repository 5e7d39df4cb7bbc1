"""Activation maximization: the input that most excites a unit, a direction or a class.

Gradient ascent on an image parameterization ``θ``: ``θ_{t+1} = θ_t + Adam(∇_θ [F(T_t(x(θ_t)))
− λ₂ ‖x − m‖² − λ_tv TV(x)])``, where ``x(θ)`` is the image (:mod:`._param`: decorrelated Fourier
basis or raw pixels, squashed into ``value_range``), ``T_t`` a random jitter/scale/rotation and
``F`` the :mod:`objective <.objectives>`. Olah, Mordvintsev & Schubert 2017, "Feature
Visualization" (Distill); Erhan et al. 2009; the API follows Lucent's ``render.render_vis``.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from .._common import Stopwatch, check_positive, check_positive_int, generator, new_seed, progress_bar
from .._deprecation import renamed
from .._hooks import HookRun, capture
from ..adapters import wrap
from ..errors import InputError, LayerError
from ..model import Model
from ._param import image_param, make_transform, total_variation
from .activations import resolve_layers
from .objectives import Objective, as_objective

__all__ = ["maximize", "Visualization"]


@dataclasses.dataclass
class Visualization:
    """What :func:`maximize` found.

    ``images`` (images, C, H, W) in ``value_range``; ``values`` (images,) the objective at them
    (no transforms); ``curve`` (steps, images) the objective at every step (under that step's
    transforms); ``objective`` its description; ``params`` every option; ``meta`` timings.
    """

    images: torch.Tensor
    values: torch.Tensor
    curve: torch.Tensor
    objective: str
    params: dict
    meta: dict

    def plot(self, **kwargs: Any):
        """:func:`pellucid.plot.maximized` of this result."""
        from ..plot import features as _plots

        return _plots.maximized(self, **kwargs)


#: Below this many input elements per step a CPU step is a few hundred microseconds of small ops:
#: more intra-op threads only add synchronisation, and on a busy machine every step waits for a
#: preempted thread (measured on the digits CNN on a loaded 2-core box: 8-51 s for 256 steps with
#: two threads, 1.2 s with one). Zoo's training helper does the same for the same reason.
_ONE_THREAD_BELOW = 1 << 15


@contextlib.contextmanager
def _threads_for(device: torch.device, elements: int) -> Iterator[None]:
    """One intra-op thread for small CPU problems; the previous setting restored after."""
    if device.type != "cpu" or elements >= _ONE_THREAD_BELOW or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _evaluate(m: Model, x: torch.Tensor, objective: Objective, run: HookRun,
              seen: dict[str, list[torch.Tensor]]) -> torch.Tensor:
    """The objective at images ``x``: one forward pass, the objective's layers read by ``run``."""
    run.reset()
    for calls in seen.values():
        calls.clear()
    out = m.forward(x)
    for key in seen:
        if not run.calls(key):
            raise LayerError(f"layer {key!r} did not run in the forward pass; pick a layer the model uses")
        run.check_once(key)  # one activation per image: a reused module needs its call site
    value = objective({key: calls[0] for key, calls in seen.items()}, out)
    if value.shape != (len(x),):
        raise InputError(f"the objective must give one number per image; got shape {tuple(value.shape)}")
    return value


def _check_shape(shape: Any) -> tuple[int, int, int]:
    if shape is None:
        raise InputError("maximize needs shape=(channels, height, width) of one input image")
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InputError(f"shape must be (channels, height, width); got {shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"shape must be (channels, height, width); got {shape}")
    return shape


@renamed(batch="images")
def maximize(
    model: Any,
    objective: Any,
    *,
    shape: Sequence[int] | None = None,
    images: int = 1,
    steps: int = 256,
    lr: float = 0.05,
    param: str = "fft",
    transforms: Any = "standard",
    l2: float = 0.0,
    tv: float = 0.0,
    value_range: tuple[float, float] = (0.0, 1.0),
    decorrelate: bool = True,
    preprocess: Any = None,
    seed: int | None = None,
    progress: bool | None = None,
) -> Visualization:
    """Synthesize ``images`` images that maximize ``objective`` by ``steps`` of Adam at rate ``lr``.

    ``objective``: an :class:`~.objectives.Objective` (``channel``, ``neuron``, ``direction``,
    ``class_logit`` and sums, differences and multiples of them), a ``"layer:channel"`` string
    or an int (a class logit); its layers may be call sites ``"name@k"`` of a module that runs
    several times per forward pass (a plain name on such a module is refused). ``shape``: one
    image, ``(C, H, W)`` (required: a module does not say what size it takes). ``images``: how
    many images are optimised together, each from its own random start (``batch=`` before).
    ``param``: ``"fft"`` (default) or ``"pixel"``. ``transforms``: ``"standard"``, ``None`` or a
    dict (see :func:`._param.make_transform`). ``l2`` and ``tv`` weigh an L2 penalty (on the
    distance to the middle of ``value_range``) and total variation. ``preprocess`` (a callable)
    runs on the image before the model, e.g. a normalisation. The same ``seed`` gives the same
    images. The model is left as found. Small problems on the CPU (under 2**15 input elements
    per step) run on one intra-op thread, restored after.

    Cost: ``steps`` forward and backward passes of ``images`` images.

    Example:
        >>> import pellucid
        >>> from pellucid.features import class_logit, maximize
        >>> net, _ = pellucid.zoo.digits_cnn()  # doctest: +SKIP
        >>> vis = maximize(net, class_logit(3), shape=(1, 8, 8), seed=0)  # doctest: +SKIP
    """
    clock = Stopwatch()
    m = wrap(model)
    m.require_gradients("maximize")
    objective = as_objective(objective)
    shape = _check_shape(shape)
    images = check_positive_int(images, "images")
    steps = check_positive_int(steps, "steps")
    lr = check_positive(lr, "lr")
    l2 = check_positive(l2, "l2", allow_zero=True)
    tv = check_positive(tv, "tv", allow_zero=True)
    keys = resolve_layers(m, objective.layers) if objective.layers else []
    seed = new_seed(seed)
    gen = generator(seed, torch.device("cpu"))  # CPU draws: the same seed, the same images anywhere
    prep = preprocess or (lambda x: x)
    with m.explaining(), capture(m, keys) as (run, seen):
        theta, image = image_param(param, (images, *shape), generator=gen, device=m.device,
                                   dtype=m.dtype, value_range=value_range, decorrelate=decorrelate)
        transform = make_transform(transforms, shape[1:], gen)
        opt = torch.optim.Adam([theta], lr=lr)
        mid = (value_range[0] + value_range[1]) / 2
        curve = torch.empty(steps, images, dtype=m.dtype)
        with torch.enable_grad(), _threads_for(m.device, images * shape[0] * shape[1] * shape[2]):
            for i in progress_bar(range(steps), progress, "maximize", unit="step"):
                x = image()
                value = _evaluate(m, prep(transform(x)), objective, run, seen)
                loss = -value.sum()
                if l2:
                    loss = loss + l2 * (x - mid).pow(2).flatten(1).mean(1).sum()
                if tv:
                    loss = loss + tv * total_variation(x).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                curve[i] = value.detach().cpu()
        with torch.no_grad():
            final = image()
            values = _evaluate(m, prep(final), objective, run, seen)
    return Visualization(
        images=final.detach(), values=values.detach(), curve=curve, objective=objective.description,
        params={"shape": shape, "images": images, "steps": steps, "lr": lr, "param": param,
                "transforms": transforms if isinstance(transforms, (str, dict, type(None))) else "custom",
                "l2": l2, "tv": tv, "value_range": tuple(value_range), "decorrelate": decorrelate,
                "seed": seed},
        meta={"seconds": clock.seconds(), "forward_rows": steps * images + images,
              "backward_rows": steps * images},
    )
