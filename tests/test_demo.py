"""The demo and the ``pellucid`` command: files written, pictures valid, page self-contained."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from pellucid.cli import main  # noqa: E402
from pellucid.demo import DEMO_METHODS, pick_digits, run_demo  # noqa: E402

pytestmark = pytest.mark.slow  # trains the digits CNN once (seconds), then reads its cache

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("demo") / "out"
    return run_demo(out, cache_dir=cache, progress=False)


def test_demo_writes_every_picture_and_the_page(demo):
    out = demo["out_dir"]
    expected = [f"{name}.png" for name in DEMO_METHODS] + ["compare.png", "index.html"]
    assert sorted(p.name for p in demo["files"]) == sorted(expected)
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name in expected[:-1]:
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and min(image.shape[:2]) > 100
    assert plt.get_fignums() == []


def test_demo_page_is_self_contained(demo):
    page = (demo["out_dir"] / "index.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(DEMO_METHODS) + 1
    assert 'src="compare.png"' not in page and "file:" not in page  # nothing to fetch
    assert f"{demo['accuracy']:.4f}" in page
    for name in DEMO_METHODS:
        assert name in page


def test_demo_results(demo):
    assert demo["accuracy"] >= 0.95
    assert set(demo["seconds"]) == set(DEMO_METHODS)
    assert all(s >= 0 for s in demo["seconds"].values())
    assert demo["true"] == [0, 1, 2, 3, 4, 5] and len(demo["predicted"]) == 6


def test_pick_digits_varies_classes():
    import torch

    labels = torch.tensor([3, 0, 1, 1, 0, 2, 2, 1])
    assert pick_digits(labels, 4) == [1, 2, 5, 0]  # classes 0, 1, 2, 3: first row of each
    with pytest.raises(ValueError, match="too few"):
        pick_digits(labels, 5)  # no 4 to pick


def test_cli_demo(tmp_path, cache, capsys):
    out = tmp_path / "cli-demo"
    assert main(["demo", "--out", str(out), "-n", "3", "--cache-dir", str(cache)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed
    assert f"wrote {len(DEMO_METHODS) + 2} files to {out.resolve()}" in printed
    assert (out / "index.html").is_file()


def test_cli_methods_and_version(capsys):
    assert main(["methods"]) == 0
    printed = capsys.readouterr().out
    assert "grad_cam" in printed and "needs gradients, layer=" in printed
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and "pellucid 0.1.0" in capsys.readouterr().out
    assert main([]) == 2


def test_python_m_pellucid_methods():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "pellucid", "methods"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "integrated_gradients" in done.stdout
