"""What ``pellucid explain`` and ``pellucid inspect`` do once their arguments are parsed.

Kept apart from :mod:`pellucid.cli` so that ``pellucid --help`` stays fast (no torch import).
Every failure a user can cause (a missing file, an unknown method, a bad ``--param``) raises a
:class:`~pellucid.errors.PellucidError`, which the command prints on one line (exit code 1).
"""
from __future__ import annotations

import argparse
import ast
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from ._common import check_positive_int
from .errors import InputError, ModelError

__all__ = ["run_explain", "run_inspect", "parse_params", "parse_target"]

#: Method options that ``pellucid explain`` takes as options of its own.
_OWN_FLAGS = {"target": "--target", "layer": "--layer", "background": "--background",
              "batch_size": "--batch-size"}


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["steps=32", "rule='riemann_left'"]`` -> ``{"steps": 32, "rule": "riemann_left"}``.

    Values are Python literals when they parse as one (numbers, tuples, True/None), text otherwise.
    The options go to the method as they are, so a method's renamed options keep working (with
    its deprecation warning) for as long as the method accepts them.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise InputError(f"--param needs KEY=VALUE with KEY a name, got {pair!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        params[key.strip()] = value
    return params


def parse_target(text: str | None) -> Any:
    """``None`` (the predicted class), one class index, or one per row from ``"3,1,4"``."""
    if text is None or text.strip().lower() in ("", "pred", "predicted"):
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError as err:
        raise InputError(
            f"--target must be a class index or indices separated by commas, got {text!r}") from err
    return values[0] if len(values) == 1 else torch.tensor(values)


def run_explain(args: argparse.Namespace) -> int:
    from .loading import load_data, load_model
    from .registry import explain, get
    from .reporting import report

    info = get(args.method)  # an unknown method fails before any file is read
    params = parse_params(args.param)
    flagged = sorted(set(params) & set(_OWN_FLAGS))
    if flagged:
        raise InputError(f"give {', '.join(_OWN_FLAGS[k] for k in flagged)} as its own option, not --param")
    if args.batch_size is not None:
        check_positive_int(args.batch_size, "--batch-size")
    model = load_model(args.model)
    data, names = load_data(args.data, key=args.key)
    if args.layer is not None:
        params["layer"] = args.layer
    if info.background and "background" not in params:
        if args.background is not None:
            params["background"] = load_data(args.background, key=args.key)[0]
        else:
            print(f"{args.method} needs background rows; using the {len(data)} data rows "
                  "(pass --background PATH to choose)", file=sys.stderr)
            params["background"] = data
    if args.batch_size is not None:
        params["batch_size"] = args.batch_size
    expl = explain(model, data, args.method, target=parse_target(args.target), **params)
    if names is not None and expl.values.dim() == 2 and expl.values.shape[1] == len(names):
        expl.feature_names = names
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    expl.save(out / "explanation.npz")
    title = f"{args.method} · {Path(args.model).name} on {Path(args.data).name}"
    report([expl], out / "report.html", title=title, max_rows=min(len(data), 16))
    seconds = expl.meta.get("seconds")
    took = f" in {seconds:.2f} s" if isinstance(seconds, float) else ""
    print(f"explained {len(data)} row(s) with {args.method}{took}; wrote {out / 'explanation.npz'} "
          f"and {out / 'report.html'}")
    return 0


def _unflattened(program: Any) -> torch.nn.Module:
    """An exported program as a tree of modules, one per module of the original: the module that
    ``program.module()`` gives is one flat graph and refuses the eval() that inspection needs."""
    with warnings.catch_warnings():
        # torch's own unflatten trips torch's pytree deprecation (torch 2.13); nothing to fix here
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        return torch.export.unflatten(program)


def run_inspect(args: argparse.Namespace) -> int:
    from .inspect import structure, weights
    from .loading import load_model
    from .model import Model
    from .reporting import report

    try:
        shape = tuple(int(v) for v in args.input_shape.split(","))
    except ValueError as err:
        raise InputError(
            f"--input-shape must be integers separated by commas, got {args.input_shape!r}") from err
    if not shape or any(v < 1 for v in shape):
        raise InputError(f"--input-shape must be positive integers, got {args.input_shape!r}")
    model = load_model(args.model)
    module = (model.module or model.fn) if isinstance(model, Model) else model
    program = getattr(getattr(model, "fn", None), "program", None)  # a torch.export program
    if program is not None:
        module = _unflattened(program)
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"pellucid inspect needs a torch model (.pt2, TorchScript or "
                         f"module:function); {args.model} is a black box")
    dtype = next((p.dtype for p in module.parameters()), torch.float32)
    s = structure(module, torch.zeros(shape, dtype=dtype))
    w = weights(module)
    print(s)
    print()
    print(w)
    if args.out is not None:
        out = Path(args.out).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        path = report([("structure", s), ("weights", w)], out / "report.html",
                               title=f"{Path(args.model).name}: structure and weights")
        print(f"wrote {path}")
    return 0
