"""The ``pellucid`` command: ``demo``, ``methods``, ``explain``, ``inspect`` and ``--version``."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _print(text: str) -> None:
    """Print, replacing what the terminal's encoding cannot show (docstrings hold Σ, ∂, α)."""
    try:
        print(text)
    except UnicodeEncodeError:
        encoding = sys.stdout.encoding or "ascii"
        print(text.encode(encoding, errors="replace").decode(encoding))


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="pellucid", description="Explain neural networks: attributions and their pictures."
    )
    parser.add_argument("--version", action="version", version=f"pellucid {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command")

    demo = commands.add_parser(
        "demo", help="explain a few handwritten digits with every method; write PNGs and HTML",
        description="Train (or load) the digits CNN, explain test digits with every attribution "
                    "method, and write one PNG per method, compare.png and index.html.",
    )
    demo.add_argument("--out", default="pellucid-demo", metavar="DIR",
                      help="folder to write into (default: %(default)s)")
    demo.add_argument("-n", type=int, default=6, metavar="N",
                      help="how many digits to explain (default: %(default)s)")
    demo.add_argument("--cache-dir", default=None, metavar="DIR",
                      help="where the CNN's weights are cached (default: $PELLUCID_CACHE or "
                           "~/.cache/pellucid)")

    commands.add_parser("methods", help="list the registered explanation methods",
                        description="List the registered explanation methods and what they need.")

    explain = commands.add_parser(
        "explain", help="explain a model's predictions on a data file; write the values and a report",
        description="Run one explanation method on every row of --data and write "
                    "explanation.npz (pellucid.Explanation.load reads it) and report.html to --out.",
    )
    explain.add_argument("--model", required=True, metavar="PATH",
                         help="an .onnx file, a torch.export program (.pt2), a TorchScript file (.pt), "
                              "or module:function returning a model")
    explain.add_argument("--data", required=True, metavar="PATH",
                         help=".npy, .npz, .csv (header row = feature names), .parquet, or a folder "
                              "of PNG/JPEG images")
    explain.add_argument("--method", required=True, metavar="NAME", help="see `pellucid methods`")
    explain.add_argument("--target", default=None, metavar="T",
                         help="class index, or one per row separated by commas (default: the "
                              "predicted class)")
    explain.add_argument("--layer", default=None, metavar="NAME",
                         help="layer name, for methods that need one")
    explain.add_argument("--background", default=None, metavar="PATH",
                         help="background rows for methods that need them (default: the data itself)")
    explain.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                         help="a method option, e.g. --param steps=64 --param rule=riemann_left (repeatable)")
    explain.add_argument("--key", default=None, metavar="NAME", help="the array to read from an .npz file")
    explain.add_argument("--out", default="pellucid-out", metavar="DIR",
                         help="folder to write into (default: %(default)s)")
    explain.add_argument("--batch-size", type=int, default=None, metavar="N",
                         help="rows per model evaluation (default: chosen from the input size)")

    inspect = commands.add_parser(
        "inspect", help="print a model's layers, shapes, parameter counts and weight statistics",
        description="Trace a torch model on zeros of --input-shape; print its structure and weight "
                    "statistics, and with --out write report.html (graph, tables, histograms).",
    )
    inspect.add_argument("--model", required=True, metavar="PATH",
                         help="a torch.export program (.pt2), a TorchScript file (.pt) or "
                              "module:function returning a torch model")
    inspect.add_argument("--input-shape", required=True, metavar="N,C,H,W",
                         help="shape of an example input batch, comma-separated, e.g. 1,3,32,32")
    inspect.add_argument("--out", default=None, metavar="DIR", help="also write report.html here")
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.n < 1:
        print("pellucid demo: error: -n must be at least 1", file=sys.stderr)
        return 2
    print(f"explaining {args.n} digits with every method (the first run trains a small CNN, "
          "which takes a few seconds)...", file=sys.stderr)
    result = run_demo(args.out, n=args.n, cache_dir=args.cache_dir)
    print(f"test accuracy of the digits CNN: {result['accuracy']:.4f}")
    for name, seconds in result["seconds"].items():
        print(f"  {name:<22} {seconds:7.3f} s")
    print(f"wrote {len(result['files'])} files to {result['out_dir']} (open index.html)")
    return 0


def _methods() -> int:
    from .registry import methods

    infos = methods(details=True)
    width = max((len(info.name) for info in infos), default=0)
    for info in infos:
        needs = [flag for flag, on in (("gradients", info.gradients), ("layer=", info.layer),
                                       ("background=", info.background), ("seed=", info.random))
                 if on]
        summary = info.summary.replace("``", "")
        suffix = f"  [needs {', '.join(needs)}]" if needs else ""
        _print(f"{info.name:<{width}}  {summary}{suffix}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from .cli_commands import run_explain

    return run_explain(args)


def _inspect(args: argparse.Namespace) -> int:
    from .cli_commands import run_inspect

    return run_inspect(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pellucid`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Commands:
        ``pellucid demo [--out DIR] [-n N] [--cache-dir DIR]``: explain ``N`` (default 6) test
        digits with every method and write PNGs and a self-contained ``index.html`` to ``DIR``
        (default ``pellucid-demo``); see :func:`pellucid.demo.run_demo`.
        ``pellucid methods``: list the registered methods with their one-line summaries.
        ``pellucid explain --model PATH --data PATH --method NAME [...]``: explain every row of a
        data file; writes ``explanation.npz`` and ``report.html`` (see ``pellucid explain --help``).
        ``pellucid inspect --model PATH --input-shape N,C,H,W [--out DIR]``: layers, shapes,
        parameter counts and weight statistics.
        ``pellucid --version``: print the version.

    A pellucid error (a clear message about what was wrong: a missing file, an unknown method, a
    target out of range) is printed on one line and exits with 1; a usage error exits with 2.
    """
    from .errors import PellucidError

    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        handler = {"demo": _demo, "explain": _explain, "inspect": _inspect}.get(args.command)
        return handler(args) if handler else _methods()
    except PellucidError as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"pellucid {args.command}: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 1
