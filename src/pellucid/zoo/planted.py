"""Data whose ground truth is planted, and small models trained on them in seconds.

Each data set knows where the evidence for its label is, so an attribution can be scored against
the truth (``pellucid.evaluate.pointing_game``, ``relevance_mass``, ``relevance_rank``):

- :func:`planted_patches`: noise images whose class is decided by one bright 4x4 pattern at a
  random place; two distractor patterns (as bright, but of no class) sit elsewhere, so the input
  itself does not point at the evidence.
- :func:`planted_tabular`: Gaussian features of which only a few decide the label.
- :func:`planted_sentences`: token sequences of filler words and one decisive word.

Everything is generated from a seed with a private generator (the global RNG is untouched), and
the trained models are cached like ``digits_cnn`` (see :func:`pellucid.zoo.digits.digits_cnn`).
The idea follows the planted-evidence benchmarks of Arras et al. 2022 ("CLEVR-XAI") and Adebayo
et al. 2020 ("Debugging Tests for Model Explanations").
"""
from __future__ import annotations

import os
import types
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..errors import InputError
from .digits import _accuracy, _cache_dir, _train, cached_or_trained

__all__ = [
    "PlantedImages", "PlantedTabular", "PlantedText", "planted_patches", "planted_tabular",
    "planted_sentences", "PatchCNN", "TabularMLP", "TextModel", "planted_patch_cnn",
    "planted_tabular_mlp", "planted_text_model", "PATTERNS", "DISTRACTORS", "WORDS",
]

# Bump when a data generator, an architecture or a training recipe changes (stale caches ignored).
_VERSION = "v1"


def _grid(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[c == "#" for c in r] for r in rows], dtype=torch.float32)


#: The four class patterns (4x4, eight bright pixels each): the class is the pattern's index.
PATTERNS = torch.stack([
    _grid(["####", "....", "####", "...."]),  # 0: horizontal bars
    _grid(["#.#.", "#.#.", "#.#.", "#.#."]),  # 1: vertical bars
    _grid(["#..#", ".##.", ".##.", "#..#"]),  # 2: a cross
    _grid(["#.#.", ".#.#", "#.#.", ".#.#"]),  # 3: a checkerboard
])
#: Distractor patterns: as bright as the class patterns, present in every class.
DISTRACTORS = torch.stack([
    _grid(["##..", "##..", "..##", "..##"]),  # two blocks
    _grid([".##.", "#..#", "#..#", ".##."]),  # a ring
])


class PlantedImages(NamedTuple):
    """Images ``x`` (n, 1, size, size) in [0, 1], labels ``y`` (n,), ``mask`` (n, 1, size, size):
    True on the pixels of the pattern that decides the label."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor


class PlantedTabular(NamedTuple):
    """Features ``x`` (n, d), labels ``y`` (n,) and the indices of the ``informative`` features."""

    x: torch.Tensor
    y: torch.Tensor
    informative: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(n, d)`` boolean: True on the informative features of every row."""
        m = torch.zeros(self.x.shape, dtype=torch.bool)
        m[:, self.informative] = True
        return m


class PlantedText(NamedTuple):
    """Token ids ``tokens`` (n, length), labels ``y`` (n,), ``mask`` (n, length): True at the
    decisive word."""

    tokens: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor

    def one_hot(self) -> torch.Tensor:
        """The tokens as float one-hot vectors ``(n, length, len(WORDS))``, for gradient methods."""
        return nn.functional.one_hot(self.tokens, len(WORDS)).float()

    def words(self, row: int) -> list[str]:
        """The words of one sentence."""
        return [WORDS[i] for i in self.tokens[row].tolist()]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def planted_patches(
    n: int = 1000, *, size: int = 16, patch: int = 4, distractors: int = 2, noise: float = 0.5,
    none: float = 0.0, seed: int = 0,
) -> PlantedImages:
    """Noise images where one 4x4 pattern (of :data:`PATTERNS`) at a random place decides the class.

    Background pixels are uniform in ``[0, noise)``; each image holds its class pattern and
    ``distractors`` patterns of :data:`DISTRACTORS` (chosen at random), all written at full
    contrast (bright pixels 1, dark pixels 0) into distinct cells of a grid, with a random offset
    inside the cell. Classes are uniform. ``mask`` marks the 4x4 square of the class pattern: its
    area is ``patch² / size²`` of the image (1/16 by default), the pointing-game score of a
    random map.

    A share ``none`` of the images hold a distractor instead of a class pattern, labelled
    ``len(PATTERNS)`` ("none", empty mask). Training with them (``planted_patch_cnn`` uses 0.2)
    matters: without a "none" class a model can recognise the last class by the *absence* of the
    others, and then no attribution can point at its pattern. Cost: milliseconds per 1000 images.

    Example:
        >>> x, y, mask = planted_patches(8, seed=1)
        >>> x.shape, mask.float().mean().item()
        (torch.Size([8, 1, 16, 16]), 0.0625)
    """
    if patch != PATTERNS.shape[-1]:
        side = PATTERNS.shape[-1]
        raise InputError(f"the planted patterns are {side}x{side}; got patch={patch}")
    per_side = size // (patch + 1)
    if per_side * per_side < 1 + distractors:
        raise InputError(
            f"size {size} has room for {per_side ** 2} patches, fewer than 1 + {distractors}")
    g = _generator(seed)
    cell = size // per_side
    k = 1 + distractors
    x = torch.rand(n, 1, size, size, generator=g) * noise
    y = torch.randint(len(PATTERNS), (n,), generator=g)
    kinds = torch.randint(len(DISTRACTORS), (n, k), generator=g)
    empty = torch.rand(n, generator=g) < none
    y = torch.where(empty, len(PATTERNS), y)
    first = torch.where(empty[:, None, None], DISTRACTORS[kinds[:, 0]],
                        PATTERNS[y.clamp_max(len(PATTERNS) - 1)])
    shapes = torch.cat([first[:, None], DISTRACTORS[kinds[:, 1:]]], dim=1)  # (n, k, p, p)
    cells = torch.rand(n, per_side * per_side, generator=g).argsort(dim=1)[:, :k]
    jitter = torch.randint(cell - patch + 1, (n, k, 2), generator=g)
    top = (cells // per_side) * cell + jitter[..., 0]
    left = (cells % per_side) * cell + jitter[..., 1]
    offs = torch.arange(patch)
    rows = (top[..., None, None] + offs[:, None]).expand(n, k, patch, patch)
    cols = (left[..., None, None] + offs[None, :]).expand(n, k, patch, patch)
    batch = torch.arange(n)[:, None, None, None].expand(n, k, patch, patch)
    x[batch, 0, rows, cols] = shapes
    mask = torch.zeros(n, 1, size, size, dtype=torch.bool)
    mask[batch[:, 0], 0, rows[:, 0], cols[:, 0]] = True
    mask &= ~empty[:, None, None, None]
    return PlantedImages(x, y, mask)


def planted_tabular(
    n: int = 1000, *, features: int = 10, informative: int = 3, seed: int = 0
) -> PlantedTabular:
    """Standard-normal features; the label is ``1[Σ_j w_j x_j > 0]`` over the informative ones.

    The informative features are the first ``informative`` columns, with weights alternating
    +1, -1, +1, ... (so a signed attribution must keep its sign straight); the rest are pure
    noise, independent of the label.

    Example:
        >>> d = planted_tabular(5)
        >>> d.x.shape, d.informative.tolist()
        (torch.Size([5, 10]), [0, 1, 2])
    """
    if not 1 <= informative <= features:
        raise InputError(f"informative must be in 1..{features}, got {informative}")
    x = torch.randn(n, features, generator=_generator(seed))
    w = torch.tensor([(-1.0) ** j for j in range(informative)])
    y = (x[:, :informative] @ w > 0).long()
    return PlantedTabular(x, y, torch.arange(informative))


#: The vocabulary of :func:`planted_sentences`: filler words, then the positive and the negative
#: decisive words.
FILLER = ("the", "a", "film", "movie", "plot", "actor", "scene", "was", "is", "and", "it", "this",
          "story", "music", "very", "quite", "really", "ending", "cast", "of")
POSITIVE = ("good", "great", "superb", "wonderful")
NEGATIVE = ("bad", "awful", "dull", "terrible")
WORDS = FILLER + POSITIVE + NEGATIVE


def planted_sentences(n: int = 1000, *, length: int = 12, seed: int = 0) -> PlantedText:
    """Sentences of ``length`` filler words (ids < len(FILLER)) with one decisive word.

    The decisive word is one of :data:`POSITIVE` (label 1) or :data:`NEGATIVE` (label 0), at a
    uniformly random position recorded in ``mask``. Filler words are uniform and carry no label
    information.

    Example:
        >>> s = planted_sentences(3, seed=2)
        >>> s.tokens.shape, s.mask.sum(dim=1).tolist()
        (torch.Size([3, 12]), [1, 1, 1])
    """
    g = _generator(seed)
    tokens = torch.randint(len(FILLER), (n, length), generator=g)
    y = torch.randint(2, (n,), generator=g)
    word = torch.randint(len(POSITIVE), (n,), generator=g)
    decisive = torch.where(y == 1, len(FILLER) + word, len(FILLER) + len(POSITIVE) + word)
    pos = torch.randint(length, (n,), generator=g)
    tokens[torch.arange(n), pos] = decisive
    mask = torch.zeros(n, length, dtype=torch.bool)
    mask[torch.arange(n), pos] = True
    return PlantedText(tokens, y, mask)


class PatchCNN(nn.Module):
    """conv3x3(1→8) ReLU conv3x3(8→16) ReLU conv3x3(16→16) ReLU, conv1x1(16→5), global max pool.

    The 1x1 ``head`` gives one evidence map per class and the logit is its maximum, so the
    model decides by the single strongest local match (at full 16x16 resolution, receptive field
    7x7). Classes 0-3 are the :data:`PATTERNS`, class 4 is "none" (distractors only).
    ``features.4`` (the last 3x3 conv) is the layer for Grad-CAM: its map is the class's
    evidence map.
    """

    def __init__(self, classes: int = len(PATTERNS) + 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Conv2d(16, classes, 1)
        self.pool = nn.AdaptiveMaxPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shaped (n, classes)."""
        return self.pool(self.head(self.features(x))).flatten(1)


class TabularMLP(nn.Module):
    """linear(d→32) ReLU linear(32→32) ReLU linear(32→2)."""

    def __init__(self, features: int = 10, classes: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                                 nn.Linear(32, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shaped (n, classes)."""
        return self.net(x)


class TextModel(nn.Module):
    """Embedding(len(WORDS)→8), mean over positions, linear(8→2).

    Takes token ids ``(n, length)``, or float one-hot rows ``(n, length, len(WORDS))``
    (``PlantedText.one_hot()``), which gradient methods can differentiate; the attribution of a
    word is then the sum over its one-hot axis.
    """

    def __init__(self, vocab: int = len(WORDS), dim: int = 8, classes: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.classifier = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shaped (n, classes)."""
        emb = x @ self.embedding.weight if x.is_floating_point() else self.embedding(x)
        return self.classifier(emb.mean(dim=1))


def _trained(
    name: str, build: Callable[[], nn.Module], data: Callable[[int], tuple], *, pretrained: bool,
    cache_dir: str | os.PathLike | None, seed: int, epochs: int, verbose: bool,
) -> tuple[nn.Module, dict]:
    """Build, train (or read from the cache) and score a model, leaving the global RNG untouched.

    ``data(seed)`` gives ``(x, y)``; training uses ``data(seed)``, the test split
    ``data(seed + 10_000)`` (an independent draw).
    """
    path = _cache_dir(cache_dir) / f"{name}-{_VERSION}-seed{seed}-e{epochs}.pt"

    def train(model: nn.Module) -> None:
        x, y = data(seed)
        # One intra-op thread: on batches of 64 rows of these tiny models more threads cost
        # more in synchronisation than they save, and on a busy machine they spin (measured
        # 4.7 s with one thread against 44 s with two on a loaded 2-core box).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _train(model, types.SimpleNamespace(x_train=x, y_train=y), seed=seed, epochs=epochs,
                   verbose=verbose)
        finally:
            torch.set_num_threads(threads)

    model, cached, train_seconds = cached_or_trained(path, build, train, pretrained=pretrained, seed=seed)
    x_test, y_test = data(seed + 10_000)
    info = {"test_accuracy": _accuracy(model, x_test, y_test), "cached": cached, "path": path,
            "seed": seed, "epochs": epochs, "train_seconds": train_seconds}
    return model, info


def planted_patch_cnn(
    *, pretrained: bool = True, cache_dir: str | os.PathLike | None = None, epochs: int = 8,
    train_size: int = 2000, verbose: bool = False, seed: int = 0,
) -> tuple[PatchCNN, dict]:
    """A :class:`PatchCNN` trained on ``planted_patches(train_size, none=0.2, seed=seed)``.

    Trained with Adam on first use (about 4 s on one CPU thread) and cached as
    ``<cache>/planted_patch_cnn-n<train_size>-<version>-seed<seed>-e<epochs>.pt``; the cache
    directory is found as for :func:`~pellucid.zoo.digits.digits_cnn`. ``info`` holds
    ``test_accuracy`` (on 1000 fresh images drawn alike; about 99.7%), ``cached``, ``path``,
    ``seed``, ``epochs``, ``train_seconds`` and ``cam_layer`` (``"features.4"``, the last 3x3
    conv: the layer for Grad-CAM).
    """
    model, info = _trained(
        f"planted_patch_cnn-n{train_size}", PatchCNN,
        lambda s: planted_patches(train_size if s == seed else 1000, none=0.2, seed=s)[:2],
        pretrained=pretrained, cache_dir=cache_dir, seed=seed, epochs=epochs, verbose=verbose)
    info["cam_layer"] = "features.4"
    return model, info


def planted_tabular_mlp(
    *, pretrained: bool = True, cache_dir: str | os.PathLike | None = None, epochs: int = 20,
    features: int = 10, informative: int = 3, verbose: bool = False, seed: int = 0,
) -> tuple[TabularMLP, dict]:
    """A :class:`TabularMLP` trained on ``planted_tabular(2000, ...)`` (~98% test accuracy).

    Cached like :func:`planted_patch_cnn`; ``info["informative"]`` lists the informative features.
    """
    model, info = _trained(
        f"planted_tabular_mlp-d{features}-i{informative}", lambda: TabularMLP(features),
        lambda s: planted_tabular(2000, features=features, informative=informative, seed=s)[:2],
        pretrained=pretrained, cache_dir=cache_dir, seed=seed, epochs=epochs, verbose=verbose)
    info["informative"] = list(range(informative))
    return model, info


def planted_text_model(
    *, pretrained: bool = True, cache_dir: str | os.PathLike | None = None, epochs: int = 20,
    length: int = 12, verbose: bool = False, seed: int = 0,
) -> tuple[TextModel, dict]:
    """A :class:`TextModel` trained on ``planted_sentences(2000, ...)`` (100% test accuracy).

    Cached like :func:`planted_patch_cnn`.
    """
    return _trained(
        f"planted_text_model-l{length}", TextModel,
        lambda s: planted_sentences(2000, length=length, seed=s)[:2],
        pretrained=pretrained, cache_dir=cache_dir, seed=seed, epochs=epochs, verbose=verbose)
