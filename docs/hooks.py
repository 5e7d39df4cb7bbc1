"""MkDocs hooks for the docs build (mkdocs.yml `hooks:`): a quiet, reproducible place to run the
pages' code blocks.

The blocks run inside the mkdocs process (markdown-exec), so what they need from the process is
set once here, before the first page: no progress bars in the built pages, one torch thread (the
models are tiny; a second thread only fights the build's other work), matplotlib without a
display, this folder importable so pages can `from docs_figures import figure`, and deprecated
names refused: a DeprecationWarning raised at a page's own code (an old keyword such as
`target_class=`) fails its block, so the examples always show the current API.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent


def on_startup(**kwargs) -> None:
    os.environ["PELLUCID_PROGRESS"] = "0"
    os.environ.setdefault("MPLBACKEND", "Agg")
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    # markdown-exec runs each block as a module named "_code_block_<session>_<n>_"
    warnings.filterwarnings("error", category=DeprecationWarning, module=r"_code_block_")
    # torch's own internals (conductance's forward-mode AD scripts decompositions): not ours
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning)
    import torch

    torch.set_num_threads(1)
