"""The 8x8 handwritten digits and a small CNN trained on them in seconds.

Data: scikit-learn's bundled copy of the UCI "Optical Recognition of Handwritten Digits" set
(1797 images, 8x8, 17 grey levels; Alpaydin & Kaynak, 1998). Nothing is downloaded.
The CNN's weights are trained locally on first use and cached as a plain state_dict.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# Bump when DigitsCNN's architecture or its training recipe changes, so stale caches are ignored.
_VERSION = "v1"


@dataclass(frozen=True, eq=False, repr=False)
class Digits:
    """A train/test split of the digits: x float32 (n, 1, 8, 8) in [0, 1], y int64 in 0..9."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def __repr__(self) -> str:
        return f"Digits(train={len(self.y_train)}, test={len(self.y_test)}, shape=(1, 8, 8))"


def load_digits(*, test_size: float = 0.25, seed: int = 0) -> Digits:
    """Load scikit-learn's 8x8 digits as tensors, split stratified by class.

    Pixels are divided by 16 so they lie in [0, 1]. With the defaults: 1347 training and 450 test
    images. Cost: reads a small bundled CSV (milliseconds).

    Example:
        >>> d = load_digits()
        >>> d.x_train.shape, d.x_test.shape
        (torch.Size([1347, 1, 8, 8]), torch.Size([450, 1, 8, 8]))
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(
        torch.arange(len(y)).numpy(), test_size=test_size, random_state=seed, stratify=y.numpy()
    )
    idx_train, idx_test = torch.as_tensor(idx_train), torch.as_tensor(idx_test)
    return Digits(x[idx_train], y[idx_train], x[idx_test], y[idx_test])


class DigitsCNN(nn.Module):
    """A LeNet-style CNN for 1x8x8 digits (38,282 parameters).

    features: conv3x3(1->16), ReLU, conv3x3(16->32), ReLU, maxpool2 -> 32x4x4;
    classifier: flatten, linear(512->64), ReLU, linear(64->10). `features.2` is the last conv
    (the usual Grad-CAM layer). LeCun et al., 1998, "Gradient-based learning applied to document
    recognition".
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shaped (n, 10)."""
        return self.classifier(self.features(x))


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("PELLUCID_CACHE"):
        return Path(os.environ["PELLUCID_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "pellucid"
    return Path.home() / ".cache" / "pellucid"


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x).argmax(dim=1) == y).sum().item() / len(y)


def _train(model: nn.Module, data: Digits, *, seed: int, epochs: int, verbose: bool) -> None:
    """Adam (lr 1e-2 halved every 10 epochs), cross-entropy, minibatches of 64, seeded shuffling."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()
    n = len(data.y_train)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, 64):
            idx = perm[start : start + 64]
            opt.zero_grad()
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: loss {total / n:.4f}")
    model.eval()


def _save_atomic(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def cached_or_trained(
    path: Path, build: Callable[[], nn.Module], train: Callable[[nn.Module], None], *,
    pretrained: bool, seed: int,
) -> tuple[nn.Module, bool, float]:
    """``(model, cached, train seconds)``: ``build()`` under torch seed ``seed`` (the global RNG
    restored after), its weights read from ``path`` when ``pretrained`` and present, else
    ``train(model)`` and the weights written there atomically (random weights without
    ``pretrained``). The model comes back in eval mode."""
    cached, train_seconds = False, 0.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
        if pretrained and path.is_file():
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            cached = True
        elif pretrained:
            start = time.perf_counter()
            train(model)
            train_seconds = time.perf_counter() - start
            _save_atomic(model.state_dict(), path)
    return model.eval(), cached, train_seconds


def digits_cnn(
    *,
    pretrained: bool = True,
    cache_dir: str | os.PathLike | None = None,
    epochs: int = 30,
    verbose: bool = False,
    seed: int = 0,
) -> tuple[DigitsCNN, dict]:
    """A `DigitsCNN` in eval mode, trained on `load_digits()` (about 98% test accuracy).

    With `pretrained=True` the weights are read from `<cache>/digits_cnn-<version>-seed<seed>
    -e<epochs>.pt` when present, otherwise trained deterministically (a few seconds on two CPU
    cores: `epochs` passes of Adam over 1347 images) and written there atomically. The cache
    directory is `cache_dir`, else `$PELLUCID_CACHE`, else `$XDG_CACHE_HOME/pellucid`, else
    `~/.cache/pellucid`. With `pretrained=False` the model is freshly initialised from `seed`.
    The caller's global torch RNG state is left untouched either way.

    Returns `(model, info)`, where `info` holds `test_accuracy` (float, on the default test split),
    `cached` (True when the weights came from the cache), `path` (the cache file), `seed`,
    `epochs` and `train_seconds` (0.0 unless trained in this call).

    Example:
        >>> model, info = digits_cnn()  # doctest: +SKIP
        >>> info["test_accuracy"] > 0.95  # doctest: +SKIP
        True
    """
    data = load_digits(seed=0)
    path = _cache_dir(cache_dir) / f"digits_cnn-{_VERSION}-seed{seed}-e{epochs}.pt"
    model, cached, train_seconds = cached_or_trained(
        path, DigitsCNN, lambda m: _train(m, data, seed=seed, epochs=epochs, verbose=verbose),
        pretrained=pretrained, seed=seed)
    info = {
        "test_accuracy": _accuracy(model, data.x_test, data.y_test),
        "cached": cached,
        "path": path,
        "seed": seed,
        "epochs": epochs,
        "train_seconds": train_seconds,
    }
    return model, info
