"""A small BERT-style text classifier whose label is set by one planted token, with its tokenizer.

:func:`planted_token_texts` writes sentences of 4 to 12 filler words (:data:`~pellucid.zoo.planted
.FILLER`) holding one decisive word, :data:`~pellucid.zoo.planted.POSITIVE` (label 1) or
:data:`~pellucid.zoo.planted.NEGATIVE` (label 0), at a random place. :class:`WordTokenizer` encodes
them the way a Hugging Face tokenizer does (``[CLS]`` first, ``[SEP]`` last, ``[PAD]`` = 0,
``tok(texts, padding=True, truncation=True, return_tensors="pt")`` gives ``input_ids`` and
``attention_mask``), and :class:`TextTransformer` takes them as keyword arguments, as a Hugging
Face model does, and returns logits ``(n, 2)``. :func:`planted_transformer` trains it in a few
seconds on the CPU and caches it like :func:`~pellucid.zoo.digits.digits_cnn`.

The answer is known in advance: the planted word is the only token that carries the label, so an
attribution method should rank it first. Removing it (its id replaced by ``[PAD]`` or ``[UNK]``,
or its mask set to 0) was trained to give even odds, so perturbation methods (occlusion, LIME,
Shapley values) see the same answer as gradient methods at the word embeddings. The idea follows
the planted-evidence tests of Adebayo et al. 2020 ("Debugging Tests for Model Explanations"), as
:mod:`pellucid.zoo.planted` does.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from ..errors import InputError
from .digits import _cache_dir, cached_or_trained
from .planted import FILLER, NEGATIVE, POSITIVE, WORDS

__all__ = [
    "PlantedTokenTexts", "planted_token_texts", "WordTokenizer", "Encoding", "TextTransformer",
    "TextTransformerConfig", "planted_transformer", "SPECIAL_TOKENS",
]

# Bump when the data, the architecture or the training recipe changes (stale caches ignored).
_VERSION = "v1"

#: The special tokens, in id order: ``[PAD]`` is 0, as in BERT's vocabularies it is the id the
#: embedding keeps at zero.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


class PlantedTokenTexts(NamedTuple):
    """Sentences ``texts``, labels ``y`` (n,), the planted ``word`` of each sentence, and its
    ``position``: the index of its token in the encoded ids (word index + 1, after ``[CLS]``)."""

    texts: list[str]
    y: torch.Tensor
    word: list[str]
    position: torch.Tensor


def planted_token_texts(n: int = 1000, *, length: int | tuple[int, int] = (4, 12), seed: int = 0) -> PlantedTokenTexts:
    """``n`` sentences of filler words with one decisive word; lengths uniform in ``length``.

    ``length`` is a word count or a ``(shortest, longest)`` range (both included). The decisive
    word is uniform over :data:`POSITIVE` (label 1) or :data:`NEGATIVE` (label 0), at a uniform
    position; filler words are uniform over :data:`FILLER` and carry no label information. Drawn
    from a private generator (the global RNG is untouched). Cost: milliseconds per 1000 rows.

    Example:
        >>> d = planted_token_texts(3, length=(4, 6), seed=1)
        >>> len(d.texts), [len(t.split()) for t in d.texts], d.position.tolist()
        (3, [5, 6, 4], [4, 1, 4])
    """
    low, high = (length, length) if isinstance(length, int) else tuple(length)
    if not 1 <= low <= high:
        raise InputError(f"length must be a positive word count or a (shortest, longest) range, got {length!r}")
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(low, high + 1, (n,), generator=g)
    fill = torch.randint(len(FILLER), (n, high), generator=g)
    y = torch.randint(2, (n,), generator=g)
    pick = torch.randint(len(POSITIVE), (n,), generator=g)
    where = (torch.rand(n, generator=g) * lengths).long()
    texts, words = [], []
    for i in range(n):
        word = (POSITIVE if y[i] == 1 else NEGATIVE)[int(pick[i])]
        row = [FILLER[j] for j in fill[i, : int(lengths[i])].tolist()]
        row[int(where[i])] = word
        texts.append(" ".join(row))
        words.append(word)
    return PlantedTokenTexts(texts, y, words, where + 1)


# Words and single punctuation marks, as BERT's basic tokenizer splits them.
_WORD = re.compile(r"\[(?:PAD|UNK|CLS|SEP)\]|\w+|[^\w\s]")


class Encoding(dict):
    """A tokenizer's output: ``input_ids`` and ``attention_mask`` as a ``dict`` (keys also read
    as attributes, like Hugging Face's ``BatchEncoding``)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def to(self, device: torch.device | str) -> Encoding:
        """The tensors moved to ``device``."""
        return Encoding({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.items()})


class WordTokenizer:
    """Whitespace word tokenizer over :data:`SPECIAL_TOKENS` + :data:`~pellucid.zoo.planted.WORDS`,
    called like a Hugging Face tokenizer.

    ``tok(texts, padding=True, truncation=True, return_tensors="pt")`` gives an :class:`Encoding`
    with ``input_ids`` (``[CLS] words… [SEP]``, right-padded with ``[PAD]`` = 0) and
    ``attention_mask`` (1 on real tokens), the same as Hugging Face's ``BertTokenizer`` on this
    vocabulary gives (without ``token_type_ids``, which the model does not take). Text is
    lower-cased and split into words and punctuation marks; unknown ones become ``[UNK]``.
    ``padding``: ``True``/``"longest"``, ``"max_length"`` or ``False``; ``truncation`` cuts to
    ``max_length`` (default ``model_max_length``) keeping ``[SEP]`` last; ``return_tensors``:
    ``"pt"``, ``"np"`` or ``None`` (lists).

    Example:
        >>> tok = WordTokenizer()
        >>> enc = tok(["a good film", "bad"], padding=True, return_tensors="pt")
        >>> enc["input_ids"].tolist(), enc["attention_mask"].tolist()
        ([[2, 5, 24, 6, 3], [2, 28, 3, 0, 0]], [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
        >>> tok.convert_ids_to_tokens(enc["input_ids"][1])
        ['[CLS]', 'bad', '[SEP]', '[PAD]', '[PAD]']
    """

    model_input_names = ["input_ids", "attention_mask"]
    padding_side = "right"
    pad_token, unk_token, cls_token, sep_token = SPECIAL_TOKENS
    pad_token_id, unk_token_id, cls_token_id, sep_token_id = range(len(SPECIAL_TOKENS))
    all_special_tokens = list(SPECIAL_TOKENS)
    all_special_ids = list(range(len(SPECIAL_TOKENS)))

    def __init__(self, words: Sequence[str] = WORDS, *, model_max_length: int = 32) -> None:
        self.vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *words))}
        self._tokens = list(self.vocab)
        self.model_max_length = model_max_length

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        """The number of tokens, special ones included."""
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={len(self)}, model_max_length={self.model_max_length})"

    def get_vocab(self) -> dict[str, int]:
        """``{token: id}``."""
        return dict(self.vocab)

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """The id of a token (``[UNK]``'s if unknown), or a list of ids for a list of tokens."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int] | torch.Tensor) -> str | list[str]:
        """The token of an id, or a list of tokens for a sequence (or 1-D tensor) of ids."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if isinstance(ids, int):
            return self._token(ids)
        return [self._token(int(i)) for i in ids]

    def _token(self, i: int) -> str:
        if not 0 <= i < len(self._tokens):
            raise InputError(f"token id {i} is outside the vocabulary (0..{len(self._tokens) - 1})")
        return self._tokens[i]

    def __call__(
        self, texts: str | Sequence[str], *, padding: bool | str = False,
        truncation: bool | str = False, max_length: int | None = None,
        return_tensors: str | None = None,
    ) -> Encoding:
        single = isinstance(texts, str)
        rows = [texts] if single else list(texts)
        if not all(isinstance(t, str) for t in rows):
            raise InputError("WordTokenizer encodes strings: give a string or a list of strings")
        limit = max_length if max_length is not None else self.model_max_length
        ids = []
        for text in rows:
            words = [self.vocab.get(w if w in SPECIAL_TOKENS else w.lower(), self.unk_token_id)
                     for w in _WORD.findall(text)]
            if truncation not in (False, None, "do_not_truncate"):
                words = words[: max(limit - 2, 0)]
            ids.append([self.cls_token_id, *words, self.sep_token_id])
        if padding in (True, "longest", "max_length"):
            width = limit if padding == "max_length" else max(map(len, ids))
            masks = [[1] * len(r) + [0] * (width - len(r)) for r in ids]
            ids = [r + [self.pad_token_id] * (width - len(r)) for r in ids]
        elif padding in (False, "do_not_pad"):
            masks = [[1] * len(r) for r in ids]
        else:
            raise InputError(f"padding must be True, False, 'longest' or 'max_length'; got {padding!r}")
        if return_tensors is None:
            return Encoding(input_ids=ids[0] if single else ids, attention_mask=masks[0] if single else masks)
        if return_tensors not in ("pt", "np"):
            raise InputError(f"return_tensors must be 'pt', 'np' or None; got {return_tensors!r}")
        if len({len(r) for r in ids}) > 1:
            raise InputError("the sentences have different lengths: pass padding=True to return tensors")
        out = Encoding(input_ids=torch.tensor(ids, dtype=torch.long),
                       attention_mask=torch.tensor(masks, dtype=torch.long))
        return out if return_tensors == "pt" else Encoding({k: v.numpy() for k, v in out.items()})


@dataclass
class TextTransformerConfig:
    """Sizes of a :class:`TextTransformer`, with Hugging Face's attribute names (``id2label`` and
    ``label2id`` name the classes)."""

    vocab_size: int = len(SPECIAL_TOKENS) + len(WORDS)
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 64
    max_position_embeddings: int = 32
    pad_token_id: int = 0
    id2label: dict[int, str] = field(default_factory=lambda: {0: "negative", 1: "positive"})

    @property
    def label2id(self) -> dict[str, int]:
        """``{class name: index}``."""
        return {name: i for i, name in self.id2label.items()}

    @property
    def num_labels(self) -> int:
        """The number of classes."""
        return len(self.id2label)


class _Embeddings(nn.Module):
    """Token + position embeddings, then LayerNorm (BERT's, without token types)."""

    def __init__(self, config: TextTransformerConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size,
                                            padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``(n, T, hidden)``."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.norm(self.word_embeddings(input_ids) + self.position_embeddings(positions))


class _EncoderLayer(nn.Module):
    """Post-norm transformer layer: self-attention (``nn.MultiheadAttention``, so
    :func:`pellucid.features.attention` can read its weights), then a GELU feed-forward."""

    def __init__(self, config: TextTransformerConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.attention = nn.MultiheadAttention(d, config.num_attention_heads, dropout=0.0, batch_first=True)
        self.attention_norm = nn.LayerNorm(d)
        self.feed_forward = nn.Sequential(nn.Linear(d, config.intermediate_size), nn.GELU(),
                                          nn.Linear(config.intermediate_size, d))
        self.output_norm = nn.LayerNorm(d)

    def forward(self, h: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """``padding`` is added to the attention scores of each key: 0, or the dtype's minimum."""
        # With weights asked for, torch computes attention as matmul + softmax, which on these
        # tiny heads is faster on the CPU than its fused kernel (and the same up to rounding).
        a, _ = self.attention(h, h, h, key_padding_mask=padding, need_weights=True, average_attn_weights=False)
        h = self.attention_norm(h + a)
        return self.output_norm(h + self.feed_forward(h))


class TextTransformer(nn.Module):
    """A BERT-style classifier: ``classifier(encoder(embeddings(input_ids))[:, 0])``.

    Token and position embeddings (``embeddings.word_embeddings``, ``[PAD]``'s row kept at
    zero), ``num_hidden_layers`` post-norm encoder layers (``encoder.<k>``), and a linear
    ``classifier`` on the ``[CLS]`` token's final state. Called like a Hugging Face model,
    ``model(input_ids=…, attention_mask=…)``, it returns logits ``(n, num_labels)``. Masked keys
    get the dtype's minimum added to their attention scores (as BERT does), so their weights are
    exactly 0 and a sentence gives the same logits alone or padded into a longer batch; without
    ``attention_mask`` every token is attended to (Hugging Face's default), padding included.
    Cost: ``O(T² · hidden + T · hidden²)`` per row and layer (a forward pass takes about 25 µs
    per row of 14 tokens on one CPU thread). Architecture after Devlin et al. 2019, "BERT:
    Pre-training of Deep Bidirectional Transformers for Language Understanding".
    """

    def __init__(self, config: TextTransformerConfig | None = None) -> None:
        super().__init__()
        self.config = config or TextTransformerConfig()
        self.embeddings = _Embeddings(self.config)
        self.encoder = nn.ModuleList(_EncoderLayer(self.config) for _ in range(self.config.num_hidden_layers))
        self.classifier = nn.Linear(self.config.hidden_size, self.config.num_labels)

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding (the layer to attribute through for one value per token)."""
        return self.embeddings.word_embeddings

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits, shaped (n, num_labels), from token ids (n, T) and a 0/1 mask (n, T)."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise InputError("input_ids must be an integer tensor of token ids shaped (n, tokens)")
        limit = self.config.max_position_embeddings
        if input_ids.shape[1] > limit:
            raise InputError(f"{input_ids.shape[1]} tokens exceed the model's {limit} positions: "
                             "tokenize with truncation=True")
        h = self.embeddings(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        elif attention_mask.shape != input_ids.shape:
            raise InputError(f"attention_mask is shaped {tuple(attention_mask.shape)}, unlike input_ids "
                             f"{tuple(input_ids.shape)}: pass the mask the tokenizer returned with the ids")
        padding = (1.0 - attention_mask.to(h.dtype)) * torch.finfo(h.dtype).min
        for layer in self.encoder:
            h = layer(h, padding)
        return self.classifier(h[:, 0])


def _removals(ids: torch.Tensor, mask: torch.Tensor, which: torch.Tensor, g: torch.Generator) -> None:
    """Remove the tokens ``which`` (in place) the three ways a perturbation method may: the id
    set to ``[PAD]`` or ``[UNK]``, or the mask set to 0."""
    how = torch.randint(3, ids.shape, generator=g)
    ids[which & (how == 0)] = WordTokenizer.pad_token_id
    ids[which & (how == 1)] = WordTokenizer.unk_token_id
    mask[which & (how == 2)] = 0


def _train(model: TextTransformer, data: PlantedTokenTexts, *, seed: int, epochs: int, verbose: bool) -> None:
    """AdamW (lr 3e-3, cosine decay), minibatches of 64, seeded shuffling and removals.

    Each minibatch removes every filler word with probability 0.1 (label kept) and, in 15% of the
    rows, the planted word (target: even odds), so the model's answer to a removed token is the
    one perturbation methods assume.
    """
    enc = WordTokenizer()(data.texts, padding=True, return_tensors="pt")
    ids, mask, n = enc["input_ids"], enc["attention_mask"], len(data.texts)
    planted = torch.zeros_like(ids, dtype=torch.bool)
    planted[torch.arange(n), data.position] = True
    filler = mask.bool() & ~planted & (ids != WordTokenizer.cls_token_id) & (ids != WordTokenizer.sep_token_id)
    soft = nn.functional.one_hot(data.y, 2).float()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    steps = epochs * -(-n // 64)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(n, generator=g).split(64):
            b_ids, b_mask, target = ids[idx].clone(), mask[idx].clone(), soft[idx].clone()
            drop = torch.rand(len(idx), generator=g) < 0.15
            target[drop] = 0.5
            which = (filler[idx] & (torch.rand(b_ids.shape, generator=g) < 0.1)) | (planted[idx] & drop[:, None])
            _removals(b_ids, b_mask, which, g)
            loss = nn.functional.cross_entropy(model(input_ids=b_ids, attention_mask=b_mask), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: loss {total / n:.4f}")
    model.eval()


@torch.no_grad()
def _accuracy(model: TextTransformer, tokenizer: WordTokenizer, data: PlantedTokenTexts) -> float:
    enc = tokenizer(data.texts, padding=True, return_tensors="pt")
    return (model(**enc).argmax(dim=1) == data.y).float().mean().item()


def planted_transformer(
    *, pretrained: bool = True, cache_dir: str | os.PathLike | None = None, epochs: int = 12,
    train_size: int = 2000, verbose: bool = False, seed: int = 0,
) -> tuple[TextTransformer, dict]:
    """A :class:`TextTransformer` (hidden 32, 2 layers, 2 heads) trained on
    ``planted_token_texts(train_size, seed=seed)``.

    Trained on first use with AdamW, 12 epochs of minibatches of 64 in which filler words and,
    in 15% of the rows, the planted word are removed (the planted word's removal with even odds as
    the target), which takes about 3 s on one CPU thread; cached as
    ``<cache>/planted_transformer-n<train_size>-<version>-seed<seed>-e<epochs>.pt``. The cache
    directory is found as for :func:`~pellucid.zoo.digits.digits_cnn`, and the global RNG is left
    untouched. ``info`` holds ``test_accuracy`` (1000 fresh sentences; 1.0 with the defaults),
    ``cached``, ``path``, ``seed``, ``epochs``, ``train_seconds``, ``tokenizer`` (a
    :class:`WordTokenizer`) and ``layer`` (``"embeddings.word_embeddings"``, what
    ``model.get_input_embeddings()`` returns).

    Example:
        >>> model, info = planted_transformer()  # doctest: +SKIP
        >>> enc = info["tokenizer"](["the plot was superb", "a dull film"],  # doctest: +SKIP
        ...                         padding=True, return_tensors="pt")
        >>> model(**enc).argmax(1).tolist()  # doctest: +SKIP
        [1, 0]
    """
    tokenizer = WordTokenizer()
    path = _cache_dir(cache_dir) / f"planted_transformer-n{train_size}-{_VERSION}-seed{seed}-e{epochs}.pt"

    def train(model: nn.Module) -> None:
        # One intra-op thread: on minibatches of 64 short rows more threads cost more in
        # synchronisation than they save (see pellucid.zoo.planted._trained).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _train(model, planted_token_texts(train_size, seed=seed), seed=seed, epochs=epochs, verbose=verbose)
        finally:
            torch.set_num_threads(threads)

    model, cached, train_seconds = cached_or_trained(path, TextTransformer, train, pretrained=pretrained, seed=seed)
    info = {"test_accuracy": _accuracy(model, tokenizer, planted_token_texts(1000, seed=seed + 10_000)),
            "cached": cached, "path": path, "seed": seed, "epochs": epochs,
            "train_seconds": train_seconds, "tokenizer": tokenizer, "layer": "embeddings.word_embeddings"}
    return model, info

