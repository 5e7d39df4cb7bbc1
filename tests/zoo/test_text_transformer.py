"""pellucid.zoo.text_transformer: the planted-token BERT-style classifier and its tokenizer."""
from __future__ import annotations

import pytest
import torch

import pellucid
from pellucid.errors import InputError
from pellucid.model import Model
from pellucid.zoo.planted import FILLER, NEGATIVE, POSITIVE
from pellucid.zoo.text_transformer import (
    SPECIAL_TOKENS,
    TextTransformer,
    WordTokenizer,
    planted_token_texts,
    planted_transformer,
)


@pytest.fixture(scope="module")
def planted():
    """The trained model (the default cache, like ``digits_cnn()``: trained once, a few seconds)."""
    return planted_transformer()


@pytest.fixture(scope="module")
def held_out(planted):
    """100 fresh sentences, padded into one batch."""
    _, info = planted
    d = planted_token_texts(100, seed=123)
    return d, info["tokenizer"](d.texts, padding=True, truncation=True, return_tensors="pt")


def test_texts_plant_one_decisive_word_at_position():
    state = torch.get_rng_state()
    d = planted_token_texts(300, length=(3, 9), seed=4)
    assert torch.equal(state, torch.get_rng_state())
    assert len(d.texts) == len(d.word) == 300 and d.y.shape == d.position.shape == (300,)
    for text, y, word, pos in zip(d.texts, d.y.tolist(), d.word, d.position.tolist()):
        words = text.split()
        assert 3 <= len(words) <= 9 and words[pos - 1] == word  # position counts [CLS]
        assert word in (POSITIVE if y == 1 else NEGATIVE)
        assert all(w in FILLER for i, w in enumerate(words) if i != pos - 1)
    assert {len(t.split()) for t in d.texts} == set(range(3, 10)) and set(d.y.tolist()) == {0, 1}
    again = planted_token_texts(300, length=(3, 9), seed=4)
    assert again.texts == d.texts and torch.equal(again.position, d.position)
    assert planted_token_texts(300, length=(3, 9), seed=5).texts != d.texts
    assert all(len(t.split()) == 6 for t in planted_token_texts(20, length=6).texts)
    for bad in (0, (5, 4)):
        with pytest.raises(InputError):
            planted_token_texts(3, length=bad)


def test_tokenizer_follows_the_hugging_face_convention():
    tok = WordTokenizer()
    enc = tok(["the film was GOOD", "bad", "a zebra, plot!"], padding=True, truncation=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert set(enc) == {"input_ids", "attention_mask"} and enc.input_ids is ids
    assert ids.shape == mask.shape == (3, 7) and ids.dtype == mask.dtype == torch.long
    assert tok.pad_token_id == 0 and set(tok.all_special_ids) == {0, 1, 2, 3}
    assert tok.convert_ids_to_tokens(tok.all_special_ids) == list(SPECIAL_TOKENS)
    assert tok.convert_ids_to_tokens(ids[0]) == ["[CLS]", "the", "film", "was", "good", "[SEP]", "[PAD]"]
    assert tok.convert_ids_to_tokens(ids[2]) == ["[CLS]", "a", "[UNK]", "[UNK]", "plot", "[UNK]", "[SEP]"]
    assert mask.tolist() == [[1] * 6 + [0], [1, 1, 1, 0, 0, 0, 0], [1] * 7]
    assert bool((ids[mask == 0] == 0).all()) and tok.convert_ids_to_tokens(5) == "a"
    assert tok.convert_tokens_to_ids(["good", "zebra"]) == [24, 1] and tok.convert_tokens_to_ids("bad") == 28
    # truncation keeps [CLS] ... [SEP]; padding to max_length; lists without return_tensors
    long = tok(["plot " * 50], padding="max_length", truncation=True, max_length=8)
    assert long["input_ids"] == [[2] + [8] * 6 + [3]] and long["attention_mask"] == [[1] * 8]
    assert tok("a film")["input_ids"] == [2, 5, 6, 3]
    assert tok(["a", "a film"], padding="max_length", max_length=5, return_tensors="np")["input_ids"].shape == (2, 5)
    with pytest.raises(InputError, match="padding=True"):
        tok(["a", "a film"], return_tensors="pt")
    with pytest.raises(InputError):
        tok.convert_ids_to_tokens([99])


def test_tokenizer_agrees_with_hugging_face_bert_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = WordTokenizer()
    (tmp_path / "vocab.txt").write_text("\n".join(tok.get_vocab()) + "\n")
    hf = transformers.BertTokenizer(str(tmp_path / "vocab.txt"), model_max_length=tok.model_max_length)
    texts = ["The film, was GOOD!", "bad [SEP] zebra", "it's a  dull\tmovie...", "plot " * 40,
             *planted_token_texts(20, seed=9).texts]
    ours = tok(texts, padding=True, truncation=True, return_tensors="pt")
    theirs = hf(texts, padding=True, truncation=True, return_tensors="pt")
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    assert torch.equal(ours["attention_mask"], theirs["attention_mask"])


def test_model_is_accurate_and_named_like_hugging_face(planted, held_out):
    model, info = planted
    d, enc = held_out
    assert isinstance(model, TextTransformer) and not model.training
    assert info["test_accuracy"] >= 0.97 and info["layer"] == "embeddings.word_embeddings"
    assert model.get_input_embeddings() is model.embeddings.word_embeddings
    assert dict(model.named_modules())[info["layer"]] is model.get_input_embeddings()
    assert model.config.label2id == {"negative": 0, "positive": 1} and model.config.hidden_size == 32
    with torch.no_grad():
        logits = model(**enc)
    assert logits.shape == (100, 2)
    assert (logits.argmax(1) == d.y).float().mean().item() >= 0.97


def test_trains_caches_and_reloads(tmp_path):
    state = torch.get_rng_state()
    model, info = planted_transformer(cache_dir=tmp_path, epochs=1, train_size=128)
    assert info["cached"] is False and info["train_seconds"] > 0 and info["path"].is_file()
    assert list(tmp_path.iterdir()) == [info["path"]]
    again, info2 = planted_transformer(cache_dir=tmp_path, epochs=1, train_size=128)
    assert info2["cached"] is True and info2["test_accuracy"] == info["test_accuracy"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert torch.equal(state, torch.get_rng_state())


def test_padding_does_not_change_the_logits_when_the_mask_is_passed(planted):
    model, info = planted
    tok = info["tokenizer"]
    short = ["good film", "the plot was dull"]
    batch = short + ["the movie and the cast and the music of this story was really quite awful"]
    with torch.no_grad():
        padded = model(**tok(batch, padding=True, return_tensors="pt"))[:2]
        alone = torch.cat([model(**tok([s], return_tensors="pt")) for s in short])
        ids = tok(batch, padding=True, return_tensors="pt")["input_ids"]
        unmasked = model(input_ids=ids)[:2]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
    # the mask is what keeps them equal: attending to the padding moves the logits
    assert (unmasked - alone).abs().max() > 1e-2


def test_bad_inputs_raise_with_the_fix(planted):
    model, info = planted
    enc = info["tokenizer"](["a good film"], return_tensors="pt")
    with pytest.raises(InputError, match="attention_mask"):
        model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"][:, :-1])
    with pytest.raises(InputError, match="truncation=True"):
        model(input_ids=torch.full((1, 40), 5))
    with pytest.raises(InputError, match="integer"):
        model(input_ids=torch.rand(1, 5))


def test_removing_the_planted_word_gives_even_odds(planted, held_out):
    """The answer perturbation methods rely on: without the planted word the model has no
    evidence (probability near ½); without a filler word it keeps its answer."""
    model, _ = planted
    d, enc = held_out
    rows = torch.arange(100)
    with torch.no_grad():
        full = model(**enc).softmax(1)[rows, d.y]
        for how in ("pad", "unk", "mask"):
            ids, mask = enc["input_ids"].clone(), enc["attention_mask"].clone()
            if how == "mask":
                mask[rows, d.position] = 0
            else:
                ids[rows, d.position] = 0 if how == "pad" else 1
            p = model(input_ids=ids, attention_mask=mask).softmax(1)[rows, d.y]
            assert full.min() > 0.9 and 0.2 < p.min() and p.max() < 0.8, how
        first = d.position != 1  # word 1 is filler in these rows
        ids = enc["input_ids"].clone()
        ids[first, 1] = 0
        p = model(input_ids=ids, attention_mask=enc["attention_mask"]).softmax(1)[rows, d.y]
        assert (p - full)[first].abs().max() < 0.05


def _by_length(enc):
    """Rows grouped by their number of real tokens: each group shares one attention mask row."""
    lengths = enc["attention_mask"].sum(1)
    return [(lengths == n).nonzero().flatten() for n in lengths.unique().tolist()]


def _masked(model, mask_row):
    """The model on token ids alone, with one batch's mask closed over (layers still reachable)."""
    def forward(ids):
        return model(input_ids=ids, attention_mask=mask_row.expand(len(ids), -1))
    return Model(forward, module=model)


def test_planted_token_ranks_first_for_layer_ig_on_the_embeddings(planted, held_out):
    model, info = planted
    d, enc = held_out
    hits, gaps = 0, []
    for rows in _by_length(enc):
        ids, mask = enc["input_ids"][rows], enc["attention_mask"][rows]
        e = pellucid.integrated_gradients(_masked(model, mask[:1]), ids, target=d.y[rows],
                                          layer=info["layer"], steps=24)
        assert e.values.shape == (len(rows), ids.shape[1], 32)
        gaps.append((e.delta.abs() / (e.outputs - e.baseline_outputs).abs()).max().item())
        per_token = e.values.sum(-1).masked_fill(mask == 0, float("-inf"))  # one value per token
        hits += int((per_token.argmax(1) == d.position[rows]).sum())
        assert bool((per_token[torch.arange(len(rows)), d.position[rows]] > 0).all())
        assert bool((e.values[mask == 0] == 0).all())  # padding: [PAD] in, [PAD] baseline
    assert hits >= 95, hits
    assert max(gaps) < 1e-3  # completeness w.r.t. the layer, relative to f(x) - f(x; a <- a(x'))


def test_layer_ig_through_the_wrapper_equals_captum(planted, held_out):
    captum_attr = pytest.importorskip("captum.attr")
    model, info = planted
    d, enc = held_out
    rows = _by_length(enc)[0]
    ids, mask = enc["input_ids"][rows], enc["attention_mask"][rows]
    ours = pellucid.integrated_gradients(_masked(model, mask[:1]), ids, target=d.y[rows],
                                         layer=info["layer"], steps=16, rule="riemann_middle")
    lig = captum_attr.LayerIntegratedGradients(
        lambda i, m: model(input_ids=i, attention_mask=m), model.get_input_embeddings())
    theirs = lig.attribute(ids, baselines=torch.zeros_like(ids), target=d.y[rows],
                           additional_forward_args=(mask,), n_steps=16, method="riemann_middle")
    torch.testing.assert_close(ours.values, theirs, atol=1e-5, rtol=0)


def test_attention_is_readable_and_ignores_padding(planted, held_out):
    model, _ = planted
    _, enc = held_out
    att = pellucid.features.attention(model, enc)
    n, t = enc["input_ids"].shape
    assert att.shape == (n, 2, 2, t, t)
    torch.testing.assert_close(att.sum(-1), torch.ones(n, 2, 2, t))
    pad = enc["attention_mask"] == 0
    assert bool((att.permute(0, 4, 1, 2, 3)[pad] == 0).all())  # no query attends to padding
