"""A small vision transformer trained in seconds on :func:`~pellucid.zoo.planted.planted_patches`.

:class:`PatchViT` is ViT-shaped (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"): a
convolutional patch embedding, a leading [CLS] token, learned position embeddings and
``torch.nn.TransformerEncoder`` blocks with global attention. It is built so that the evidence
for its answer sits at a place known in advance, the patch that holds the planted pattern, as
:class:`~pellucid.zoo.planted.PatchCNN` is for CNNs; the ViT's Grad-CAM, attention rollout and
patch attributions can then be scored against the planted mask.

Why it is not a plain [CLS]-head ViT: trained from scratch on this task, a ViT copies the
pattern's evidence into every token through attention (one pattern anywhere decides the class,
so spreading it costs nothing), and a [CLS] head reads the tokens through one query's attention.
At that attention's input Grad-CAM, which averages the gradient over the tokens, loses the
attention-score part of the gradient exactly (one query's weights sum to 1, so that part sums to
zero over the tokens); it sees only what each token's *value* would add, which training never
constrains for the tokens the class token ignores. In ViTs with global attention trained here
without token labels ([CLS] head, mean, attention, max or log-sum-exp pooling, pre- or post-norm)
the planted patch was Grad-CAM's argmax in 8-78% of the images. Two changes give the known
answer:

- **token labels** (Jiang et al. 2021, "All Tokens Matter: Token Labeling for Training Better
  Vision Transformers"): every token gets class scores from the shared ``norm`` + ``head``, and
  training asks the planted patch's token for its class and every other patch token for "none";
- **logits** ``z_cls + logsumexp_j z_j`` over the patch tokens ``j``: the class token's scores
  plus a smooth maximum of the patches'. Grad-CAM at ``norm`` then has the mean gradient
  ``head.weight[t] / patches`` over the patch tokens, so its map is exactly each patch's class
  score (less the head's bias).
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .digits import _accuracy, _cache_dir, cached_or_trained
from .planted import PATTERNS, planted_patches

__all__ = ["PatchViT", "planted_vit", "token_labels"]

# Bump when the architecture, the data or the training recipe changes (stale caches ignored).
_VERSION = "v1"
_NONE = len(PATTERNS)  # the "none" class of planted_patches(none=...)


class PatchViT(nn.Module):
    """Patch embedding conv (``patch`` x ``patch``, stride ``patch``), [CLS] + learned positions,
    ``depth`` pre-norm ``nn.TransformerEncoderLayer`` blocks (``heads`` heads, MLP ``2 * dim``),
    a final LayerNorm ``norm`` and a linear ``head`` applied to every token.

    Input ``(n, 1, size, size)``; tokens ``(n, 1 + (size // patch)², dim)`` with [CLS] first.
    ``forward`` returns ``z[:, 0] + logsumexp(z[:, 1:], dim=1)`` with ``z`` the per-token class
    scores (:meth:`token_scores`). ``"norm"`` is the layer for Grad-CAM (its map is the patches'
    scores); ``"encoder.layers.1"`` etc. are the blocks. The defaults (20x20 images, 5x5
    patches) put every planted pattern of ``planted_patches(size=20)`` inside one patch.
    """

    def __init__(self, classes: int = _NONE + 1, *, size: int = 20, patch: int = 5, dim: int = 32,
                 depth: int = 2, heads: int = 2) -> None:
        super().__init__()
        self.grid = (size // patch, size // patch)
        self.embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 1 + self.grid[0] * self.grid[1], dim) * 0.02)
        block = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def token_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of every token, ``(n, tokens, classes)``, [CLS] first."""
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1) + self.pos
        return self.head(self.norm(self.encoder(t)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, classes)``: the [CLS] scores plus the log-sum-exp of the patches'."""
        z = self.token_scores(x)
        return z[:, 0] + z[:, 1:].logsumexp(dim=1)


def token_labels(y: torch.Tensor, mask: torch.Tensor, patch: int) -> torch.Tensor:
    """``(n, patches)`` labels: ``y`` for the patch holding most of the planted mask, "none"
    (``len(PATTERNS)``) for every other patch (and for every patch of an image without a mask)."""
    share = nn.functional.avg_pool2d(mask.float(), patch).flatten(1)
    return torch.where(share > 0.5, y[:, None], torch.full_like(y[:, None], _NONE))


def _train(model: PatchViT, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, *, seed: int,
           epochs: int, patch: int, verbose: bool) -> None:
    """AdamW (one-cycle, peak lr 3e-3), minibatches of 64, loss = image CE + token-label CE."""
    gen = torch.Generator().manual_seed(seed)
    labels = token_labels(y, mask, patch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    batches = -(-len(x) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * batches,
                                                pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), 64):
            idx = perm[start:start + 64]
            opt.zero_grad()
            z = model.token_scores(x[idx])
            logits = z[:, 0] + z[:, 1:].logsumexp(dim=1)
            loss = loss_fn(logits, y[idx]) + loss_fn(z[:, 1:].flatten(0, 1), labels[idx].flatten())
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}")
    model.eval()


def planted_vit(
    *, pretrained: bool = True, cache_dir: str | os.PathLike | None = None, epochs: int = 20,
    train_size: int = 2000, verbose: bool = False, seed: int = 0,
) -> tuple[PatchViT, dict[str, Any]]:
    """A :class:`PatchViT` trained on ``planted_patches(train_size, size=20, none=0.2, seed=seed)``.

    Trained on first use (about 3 s on one CPU thread) and cached as
    ``<cache>/planted_vit-n<train_size>-<version>-seed<seed>-e<epochs>.pt``, the cache directory
    found as for :func:`~pellucid.zoo.digits.digits_cnn`; ``pretrained=False`` gives the
    untrained model. The global RNG and the thread count are left as found. Explain it on
    ``planted_patches(n, size=20)``: each pattern lies inside one 5x5 patch of the 4x4 grid.

    ``info`` holds ``test_accuracy`` (on 1000 fresh images drawn alike; 100% measured),
    ``cached``, ``path``, ``seed``, ``epochs``, ``train_seconds``, ``cam_layer`` (``"norm"``, the
    layer for Grad-CAM: tokens ``(n, 17, 32)``, [CLS] first), ``grid`` (``(4, 4)``), ``patch``
    (5) and ``size`` (20).

    Example:
        >>> model, info = planted_vit()  # doctest: +SKIP
        >>> x, y, mask = planted_patches(8, size=20, seed=1)  # doctest: +SKIP
        >>> pellucid.grad_cam(model, x, layer=info["cam_layer"]).values.shape  # doctest: +SKIP
        torch.Size([8, 1, 20, 20])
    """
    size, patch = 20, 5
    path = _cache_dir(cache_dir) / f"planted_vit-n{train_size}-{_VERSION}-seed{seed}-e{epochs}.pt"

    def train(model: nn.Module) -> None:
        x, y, mask = planted_patches(train_size, size=size, none=0.2, seed=seed)
        # One intra-op thread: faster on these tiny batches (see pellucid.zoo.planted._trained).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _train(model, x, y, mask, seed=seed, epochs=epochs, patch=patch, verbose=verbose)
        finally:
            torch.set_num_threads(threads)

    model, cached, train_seconds = cached_or_trained(
        path, lambda: PatchViT(size=size, patch=patch), train, pretrained=pretrained, seed=seed)
    x_test, y_test, _ = planted_patches(1000, size=size, none=0.2, seed=seed + 10_000)
    info = {"test_accuracy": _accuracy(model, x_test, y_test), "cached": cached, "path": path,
            "seed": seed, "epochs": epochs, "train_seconds": train_seconds, "cam_layer": "norm",
            "grid": model.grid, "patch": patch, "size": size}
    return model, info
