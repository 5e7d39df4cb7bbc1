"""pellucid.simplify as a package: no matplotlib on import, one keyword order, old names warn."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pellucid.simplify as simplify


def test_import_does_not_load_matplotlib():
    code = "import sys, pellucid.simplify; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_keyword_order_and_names():
    """Data first; seed, batch_size and progress last, in that order; training minibatches are
    train_batch_size, and batch_size (rows per model pass) never means anything else."""
    calls = [simplify.prune, simplify.fine_tune, simplify.quantize, simplify.distill,
             simplify.surrogate_tree, simplify.global_importance, simplify.train]
    for function in calls:
        names = list(inspect.signature(function).parameters)
        assert names[-1] == "progress", function.__name__
        tail = [n for n in names if n in ("seed", "batch_size", "progress")]
        assert tail == names[len(names) - len(tail):], function.__name__
        assert "train_batch_size" in names or "batch_size" in names, function.__name__
    for function in (simplify.fine_tune, simplify.distill, simplify.train):
        assert "batch_size" not in inspect.signature(function).parameters
        assert function.__renamed__ == {"batch_size": "train_batch_size"}
