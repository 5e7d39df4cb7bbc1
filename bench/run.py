"""Run every benchmark in bench/ and print its table (``make bench``).

A benchmark is a module ``bench/<name>.py`` (not starting with ``_``, not this file) with a
``run(reps=..., warmup=...) -> dict`` and a ``markdown(result) -> str``. Each result is also written
to ``bench/results/<name>.json`` (git-ignored).

    .venv/bin/python bench/run.py              # all benchmarks
    .venv/bin/python bench/run.py ig --reps 15 # one, with more repetitions
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

import torch
from _timing import cores

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(
        p.stem for p in HERE.glob("*.py") if p.name != "run.py" and not p.name.startswith("_")
    )


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*",
                        help=f"benchmarks to run (default: all of {', '.join(names)})")
    parser.add_argument("--reps", type=int, default=11,
                        help="timed repetitions (default 11, at least 7)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="warm-up runs per contender (default 2)")
    parser.add_argument("--threads", type=int, default=cores(),
                        help="torch.set_num_threads (default: the cores this process may use)")
    args = parser.parse_args(argv)
    if args.reps < 7:
        parser.error("--reps must be at least 7")
    unknown = [n for n in args.only if n not in names]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}")

    torch.set_num_threads(args.threads)
    import captum

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "captum": captum.__version__,
        "threads": torch.get_num_threads(),
        "cores": cores(),
        "cpu": platform.processor() or platform.machine(),
    }
    print(f"torch {env['torch']}, captum {env['captum']}, python {env['python']}; "
          f"torch.set_num_threads({env['threads']}) on {env['cores']} cores")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    sys.path.insert(0, str(HERE))
    for name in args.only or names:
        bench = importlib.import_module(name)
        start = time.perf_counter()
        result = bench.run(reps=args.reps, warmup=args.warmup)
        result["env"] = env
        result["wall_seconds"] = time.perf_counter() - start
        (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"\n## {name}\n")
        print(bench.markdown(result))
        written = (out_dir / f"{name}.json").relative_to(HERE.parent)
        print(f"\n({result['wall_seconds']:.0f} s; written to {written})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
