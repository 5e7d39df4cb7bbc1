"""The model seam: a :class:`Model` is what every method runs (``pellucid.wrap`` builds one).

A :class:`Model` knows its device and dtype, whether it gives gradients, and how to run rows in
chunks of at most ``batch_size``. Every method calls the shared mechanics here (input checks,
target selection, chunked forward passes, input gradients of the explained output) instead of
keeping its own copy.

Turning what the user has (a module, a callable, a scikit-learn estimator, an ONNX file) into a
:class:`Model` is :func:`pellucid.adapters.wrap`'s job, one floor up.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from . import _state
from ._common import progress_bar
from ._hooks import find_layer
from .errors import InputError, ModelError, NotDifferentiableError, PellucidError, TargetError
from .inputs import Carried, split_inputs

__all__ = [
    "Model", "Chunk", "default_batch_size", "default_forward_rows",
    "select_target", "normalize_target", "gather", "outputs_2d",
]


class Chunk(NamedTuple):
    """One chunk of rows: the ``rows`` slice and the ``target`` for those rows."""

    rows: slice
    target: int | torch.Tensor | None

# Rows per forward pass are chosen so that one chunk holds about this many input elements:
# large enough to keep a CPU or GPU busy (Captum's default of one chunk per call is 1.7x slower
# than the bare passes on the digits CNN), small enough that activations of an image model fit.
_ELEMENTS_PER_CHUNK = 1 << 18
_MIN_ROWS, _MAX_ROWS = 8, 512


def default_batch_size(row_shape: Sequence[int]) -> int:
    """Rows per forward pass when the user gave none: about 2**18 input elements, in [8, 512].

    Above ~500 rows a CPU pass starts to page-fault on fresh activation memory and gets slower
    per row (bench/README.md), so the cap is 512.
    """
    numel = max(1, math.prod(row_shape))
    return int(min(_MAX_ROWS, max(_MIN_ROWS, _ELEMENTS_PER_CHUNK // numel)))


#: Input elements per pass for forward-only work (no graph kept), and its row cap.
_FORWARD_ELEMENTS, _FORWARD_MAX_ROWS = 1 << 17, 16384


def default_forward_rows(row_shape: Sequence[int]) -> int:
    """Rows per pass for forward-only evaluation (Shapley, LIME, occlusion): about 2**17 input
    elements, never fewer than :func:`default_batch_size` and at most 16384.

    Without a graph to keep, small rows gain from large passes: a 20-feature MLP runs 3.3x faster
    per row at 8192 rows than at 512, and the 8x8 digits CNN is fastest at about 2048
    (bench/README.md, "Model-agnostic methods"). Images keep the gradient default.
    """
    numel = max(1, math.prod(row_shape))
    return int(min(_FORWARD_MAX_ROWS, max(default_batch_size(row_shape), _FORWARD_ELEMENTS // numel)))


def _chunks(n: int, size: int, *, progress: bool | None, desc: str) -> Iterator[slice]:
    """Equal slices covering ``range(n)``, none longer than ``size``; a tqdm bar after 2 s.

    Equal chunks (800 rows at size 512 run as 2 x 400, not 512 + 288) keep every pass the same
    shape, which is faster on both CPU and GPU than one full chunk and a ragged rest.
    """
    if n > size:
        size = -(-n // -(-n // size))
    starts = range(0, n, size)
    if len(starts) > 1:
        starts = progress_bar(starts, progress, desc, unit="batch")
    for start in starts:
        yield slice(start, min(start + size, n))


def _to_tensor(
    data: Any, *, device: torch.device, dtype: torch.dtype, name: str, as_float: bool
) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        t = data.detach()
    else:
        if hasattr(data, "to_numpy"):  # pandas DataFrame / Series
            data = data.to_numpy()
        try:
            arr = np.asarray(data)
        except Exception as err:  # ragged lists and the like
            raise InputError(f"{name} could not be read as an array: {err}") from err
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InputError(
                f"{name} must be numeric (a torch tensor, numpy array or pandas frame); "
                f"got an array of dtype {arr.dtype}"
            )
        t = torch.from_numpy(np.ascontiguousarray(arr))
    # Integer inputs (token ids, categorical codes) keep their dtype unless a float is needed.
    if t.is_floating_point() or as_float:
        return t.to(device=device, dtype=dtype)
    return t.to(device=device)


class Model:
    """A model pellucid can explain: a callable on a batch of rows, with its device and dtype.

    Build one with :func:`wrap`. ``module`` is the underlying ``nn.Module`` when there is one
    (hooks, layers and state restoration need it); ``fn`` is what is called on a batch.
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], Any],
        *,
        module: nn.Module | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int | None = None,
        differentiable: bool = True,
        eval_mode: bool = True,
        name: str | None = None,
    ) -> None:
        self.fn = fn
        self.module = module
        self.device = torch.device(device) if device is not None else _infer_device(module)
        self.dtype = dtype or _infer_dtype(module)
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.differentiable = differentiable
        self.eval_mode = eval_mode
        self.name = name or type(module if module is not None else fn).__name__
        #: The inputs that travel with the explained one during a call (see pellucid.inputs).
        self.carried: Carried | None = None

    def __repr__(self) -> str:
        kind = "differentiable" if self.differentiable else "black-box"
        return f"Model({self.name}, {kind}, device={self.device})"

    # -- state ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def explaining(self) -> Iterator[None]:
        """Eval mode and frozen parameters inside; the module exactly restored on exit (and the
        carried inputs of the call forgotten)."""
        outer = self.carried  # a method run inside another (SmoothGrad's base) gets its own
        try:
            with _state.explaining(self.module, eval_mode=self.eval_mode):
                yield
        finally:
            self.carried = outer

    # -- inputs ---------------------------------------------------------------------------------
    def prepare(self, inputs: Any, *, name: str = "inputs", as_float: bool = False) -> torch.Tensor:
        """The explained input as a tensor on the model's device, checked: at least 1-D,
        non-empty, finite.

        Floating inputs take the model's dtype; integer inputs keep theirs unless ``as_float``
        (gradient methods need floats: token ids are refused then, naming ``layer=``). Several
        inputs (a dict, a tuple or :class:`~pellucid.inputs.ModelInputs`) are split: the
        explained one is returned and the others are carried with it through every forward pass
        of the call (:attr:`carried`).
        """
        raw, self.carried = split_inputs(inputs, lambda value, label: _to_tensor(
            value, device=self.device, dtype=self.dtype, name=label, as_float=False))
        if self.carried is not None and not self.differentiable:
            raise InputError(f"several inputs need a torch model; {self.name} is a black box that "
                             "takes one array")
        x = _to_tensor(raw, device=self.device, dtype=self.dtype, name=name, as_float=False)
        if as_float and not x.is_floating_point():
            self._refuse_token_ids(name)
            x = x.to(self.dtype)
        if x.dim() == 0 or x.shape[0] == 0:
            raise InputError(
                f"{name} must be a batch of rows shaped (n, ...) with n >= 1; got shape {tuple(x.shape)}"
            )
        if x.is_floating_point():
            finite = torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
            if not bool(finite.all()):
                bad = torch.nonzero(~finite).flatten().tolist()
                shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
                raise InputError(
                    f"{name} contain NaN or inf values in {len(bad)} row(s) (rows {shown}); "
                    "replace or drop them before explaining"
                )
        return x

    def require_single_input(self, method: str) -> None:
        """Refuse several inputs in a method that does not carry them yet."""
        if self.carried is not None:
            raise InputError(
                f"{method} does not take several model inputs yet (every method but LRP, "
                "DeepLIFT and guided backprop does). Fold the other inputs into the model with a "
                "function, or explain with another method")

    def _refuse_token_ids(self, name: str) -> None:
        """Integer inputs fed to an embedding cannot be differentiated: say to use ``layer=``."""
        embeddings = [n for n, m in (self.module.named_modules() if self.module is not None else [])
                      if isinstance(m, nn.Embedding)]
        if embeddings:
            raise InputError(
                f"{name} are integers (token ids) and {self.name} embeds them in "
                f"{embeddings[0]!r}: gradients do not reach integer ids. Attribute to the "
                f"embedding's output instead with layer={embeddings[0]!r} (integrated_gradients, "
                "conductance), or use pellucid.text.explain, which does this for you")

    def batch_rows(self, row_shape: Sequence[int], *, forward_only: bool = False,
                   batch_size: int | None = None) -> int:
        """The chunk size to use: the call's ``batch_size``, the model's, or the default
        (:func:`default_forward_rows` for ``forward_only`` work, else :func:`default_batch_size`)."""
        default = default_forward_rows if forward_only else default_batch_size
        size = batch_size or self.batch_size or default(row_shape)
        if not isinstance(size, int) or size < 1:
            raise InputError(f"batch_size must be a positive integer, got {size!r}")
        return size

    # -- forward --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, rows: Any = None) -> torch.Tensor:
        """One call of the model on a batch, as a 2-D ``(n, outputs)`` tensor.

        ``rows`` (a slice or index tensor) says which input rows the batch came from, so that
        the carried inputs (an attention mask) go with them; ``None`` means all rows in order.
        A failure inside the model on these inputs is reported as an :class:`InputError` that
        names the shape of one row, since a wrong shape is by far the usual cause.
        """
        try:
            if self.carried is None:
                out = self.fn(x)
            else:
                args, kwargs = self.carried.arguments(x, rows)
                out = self.fn(*args, **kwargs)
        except PellucidError:  # raised on purpose by a hook or a nested pellucid call
            raise
        except (RuntimeError, ValueError, IndexError) as err:
            raise InputError(
                f"the model failed on inputs with rows shaped {tuple(x.shape[1:])}: {err}. Check that the "
                "inputs have the rank and shape the model expects, with the batch first "
                "(a single example needs a leading batch dimension: x[None])"
            ) from err
        mask = None
        if self.carried is not None and isinstance(self.carried.values.get("attention_mask"), torch.Tensor):
            mask = self.carried.values["attention_mask"]
            mask = mask[rows] if rows is not None else mask
        return outputs_2d(out, x.shape[0], mask=mask)

    def outputs(
        self, x: torch.Tensor, *, rows: torch.Tensor | None = None, batch_size: int | None = None,
        progress: bool | None = None,
    ) -> torch.Tensor:
        """All outputs ``(n, k)`` without gradients, in chunks of at most ``batch_size`` rows;
        ``rows`` (an index per row of ``x``) when ``x``'s rows are not the input rows in order."""
        size = self.batch_rows(x.shape[1:], forward_only=True, batch_size=batch_size)
        with torch.no_grad():
            parts = [self.forward(x[s], s if rows is None else rows[s])
                     for s in _chunks(len(x), size, progress=progress, desc="forward")]
        return torch.cat(parts)

    def chunks(
        self, n: int, row_shape: Sequence[int], *, target: Any = None, desc: str,
        forward_only: bool = False, batch_size: int | None, progress: bool | None,
    ) -> Iterator[Chunk]:
        """:class:`Chunk` ``(rows, target)`` covering ``range(n)``: ``rows`` a slice of at most the
        batch size, ``target`` that slice of a per-row target (an ``int`` or ``None`` as given).

        A progress bar appears on runs longer than two seconds (``progress``).
        """
        size = self.batch_rows(row_shape, forward_only=forward_only, batch_size=batch_size)
        per_row = normalize_target(target, n) if target is not None else None
        for rows in _chunks(n, size, progress=progress, desc=desc):
            yield Chunk(rows, per_row[rows] if isinstance(per_row, torch.Tensor) else per_row)

    # -- gradients ------------------------------------------------------------------------------
    def require_gradients(self, method: str) -> None:
        """Raise :class:`NotDifferentiableError` if this model gives no gradients."""
        if not self.differentiable:
            raise NotDifferentiableError(
                f"{method} needs gradients, but {self.name} is a black-box model. Use a "
                "model-agnostic method (occlusion, lime, kernel_shap, exact_shapley, "
                "permutation_shapley) or wrap a torch module."
            )

    def target_gradient(
        self, x: torch.Tensor, target: Any, *, rows: Any = None, create_graph: bool = False,
        checked: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """d f_target(x) / dx for one chunk: ``(gradient, explained outputs, target)``.

        ``target`` is one class index per row, or ``None`` for the argmax (the single output of
        a one-column model). Rows are independent in eval mode, so the gradient of the sum of the
        selected outputs is every row's own gradient, at the cost of one forward and one backward.
        ``checked=True`` promises ``target`` is already a valid LongTensor (skips the checks).
        ``rows``: the input rows the chunk came from (see :meth:`forward`).
        """
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = self.forward(x, rows)
            if not self.differentiable:  # a callable found to work on numpy arrays
                self.require_gradients("this gradient method")
            t = target if checked else select_target(out, target)
            selected = gather(out, t)
            try:
                (grad,) = torch.autograd.grad(selected.sum(), x, create_graph=create_graph)
            except RuntimeError as err:
                raise NotDifferentiableError(
                    f"could not differentiate {self.name}'s output with respect to its inputs "
                    f"({err}). Gradient methods need a model built from differentiable torch "
                    "operations; for anything else use a model-agnostic method."
                ) from err
        return grad.detach(), selected.detach(), t

    def gradients(
        self, x: torch.Tensor, target: Any, *, desc: str = "gradients", batch_size: int | None = None,
        progress: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`target_gradient` over all rows in chunks: ``(gradients, outputs, target)``."""
        grads, outs, targets = [], [], []
        for rows, t in self.chunks(len(x), x.shape[1:], target=target, batch_size=batch_size,
                                   progress=progress, desc=desc):
            g, o, tt = self.target_gradient(x[rows], t, rows=rows)
            grads.append(g)
            outs.append(o)
            targets.append(tt)
        return torch.cat(grads), torch.cat(outs), torch.cat(targets)

    # -- layers ---------------------------------------------------------------------------------
    def layer(self, layer: str | nn.Module) -> nn.Module:
        """The submodule named by a dotted path (``"features.2"``) or given as a module."""
        return find_layer(self, layer)[0]


def _infer_device(module: nn.Module | None) -> torch.device:
    if module is not None:
        for t in module.parameters():
            return t.device
        for t in module.buffers():
            return t.device
    return torch.device("cpu")


def _infer_dtype(module: nn.Module | None) -> torch.dtype:
    if module is not None:
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                return t.dtype
    return torch.get_default_dtype()


def outputs_2d(out: Any, n: int, *, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Model output as ``(n, k)``: ``.logits`` of a Hugging Face output (or a dict's
    ``"logits"``, or a dict's only tensor), the first tensor of a tuple or list.

    A language model's logits ``(n, tokens, vocab)`` — a Hugging Face output's, or any whose
    first two dimensions match the carried ``attention_mask`` — are read at each row's last
    non-padding position (the last position without a mask): the next token's scores.
    """
    sequence = False
    if hasattr(out, "logits"):
        out, sequence = out.logits, True
    elif isinstance(out, Mapping):
        tensors = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
        if "logits" in tensors or len(tensors) == 1:
            out = tensors.get("logits", next(iter(tensors.values()), None))
        else:
            raise ModelError(
                f"the model returned a dict with keys {list(out)}; pellucid explains its "
                "'logits' entry or its only tensor. Wrap the model in a function that returns the "
                "output to explain."
            )
    elif isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"the model returned {type(out).__name__}; expected a tensor of outputs")
    if out.is_complex():
        raise ModelError(f"the model returned complex outputs ({out.dtype}); explain a real part or "
                         "magnitude by wrapping the model in a function that returns it")
    if out.dim() == 0 or out.shape[0] != n:
        raise InputError(
            f"the model returned outputs of shape {tuple(out.shape)} for {n} input rows; the "
            "first dimension of the inputs must be the batch (a single example needs x[None])"
        )
    if out.dim() == 1:
        return out[:, None]
    fits_mask = mask is not None and tuple(mask.shape) == tuple(out.shape[:2])
    if out.dim() == 3 and (sequence or fits_mask):
        if fits_mask:  # the first position of the largest running count is the last real token
            last = mask.long().cumsum(1).argmax(1)
        else:
            last = torch.full((n,), out.shape[1] - 1, dtype=torch.long, device=out.device)
        return out[torch.arange(n, device=out.device), last.to(out.device)]
    if out.dim() > 2:
        raise ModelError(
            f"the model returns outputs of shape {tuple(out.shape)}; pellucid explains outputs "
            "shaped (n,) or (n, classes). Wrap the model in a function that reduces the extra "
            "dimensions (for example sums a segmentation mask) and explain that."
        )
    return out


def normalize_target(target: Any, n: int) -> int | torch.Tensor | None:
    """Check a target's type and length: ``None``, an ``int``, or a LongTensor of ``n`` entries.

    The range is checked by :func:`select_target`, once the number of outputs is known.
    """
    if target is None:
        return None
    if isinstance(target, (bool, float)) or (
        isinstance(target, torch.Tensor) and (target.is_floating_point() or target.dtype == torch.bool)
    ):
        raise TargetError(f"target must be an int or a sequence of ints, got {target!r}")
    if isinstance(target, (int, np.integer)) or (
        isinstance(target, torch.Tensor) and target.dim() == 0
    ):
        return int(target)
    try:
        t = target.detach().cpu() if isinstance(target, torch.Tensor) else torch.as_tensor(np.asarray(target))
    except Exception as err:
        raise TargetError(f"target must be an int or a sequence of ints, got {target!r}") from err
    if t.is_floating_point() or t.dtype == torch.bool or t.dim() != 1:
        raise TargetError(
            f"target must be an int or a 1-D sequence of ints (one per row), got {target!r}"
        )
    if len(t) != n:
        raise TargetError(f"target has {len(t)} entries but there are {n} input rows")
    return t.long()


def select_target(outputs: torch.Tensor, target: Any) -> torch.Tensor:
    """One output index per row as a LongTensor on the outputs' device.

    ``None``: the argmax of a multi-column output, 0 for a one-column output. An ``int``: that
    column for every row. A sequence, array or tensor of length n: one column per row.
    """
    n, k = outputs.shape
    t = normalize_target(target, n)
    if t is None:
        if k == 1:
            return torch.zeros(n, dtype=torch.long, device=outputs.device)
        return outputs.detach().argmax(dim=1)
    if isinstance(t, int):
        if not 0 <= t < k:
            raise TargetError(
                f"target {t} is out of range for a model with {k} output(s) (valid: 0 to {k - 1})"
            )
        return torch.full((n,), t, dtype=torch.long, device=outputs.device)
    bad = (t < 0) | (t >= k)
    if bool(bad.any()):
        raise TargetError(
            f"target {int(t[bad][0])} (row {int(torch.nonzero(bad)[0])}) is out of range for a "
            f"model with {k} output(s) (valid: 0 to {k - 1})"
        )
    return t.to(outputs.device)


def gather(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``outputs[i, target[i]]`` for every row."""
    return outputs.gather(1, target[:, None].to(outputs.device)).squeeze(1)
