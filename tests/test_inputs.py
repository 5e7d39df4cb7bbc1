"""Models with several inputs: the explained one is attributed, the others travel with its rows
through every chunk, path point and noisy copy (pellucid.inputs)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pellucid
from pellucid import ModelInputs
from pellucid.errors import InputError, NotDifferentiableError


class ImageAndSide(nn.Module):
    """An image model with a side vector (positional inputs), and the same model with a fixed side
    vector folded in by hand."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.side = nn.Linear(3, 4)
        self.head = nn.Linear(4 * 8 * 8, 5)

    def forward(self, image: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(image) + self.side(side)[:, :, None, None])
        return self.head(h.flatten(1))


class Bag(nn.Module):
    """Token ids and an attention mask as keyword inputs: a masked mean of embeddings, so padding
    changes nothing when the mask travels with the ids."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.emb = nn.Embedding(20, 6, padding_idx=0)
        self.mix = nn.Linear(6, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.mix(self.emb(input_ids)))
        m = attention_mask[..., None].to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1))


def _images():
    g = torch.Generator().manual_seed(2)
    return torch.rand(5, 1, 8, 8, generator=g), torch.rand(5, 3, generator=g)


class Folded(nn.Module):
    """``model`` with a fixed side vector folded in by hand."""

    def __init__(self, model: nn.Module, side: torch.Tensor) -> None:
        super().__init__()
        self.model, self.fixed = model, side

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, self.fixed.expand(len(image), -1))


@pytest.mark.parametrize("method, params", [
    ("saliency", {}), ("gradient_x_input", {}), ("integrated_gradients", {"steps": 16}),
    ("grad_cam", {"layer": "conv"}), ("conductance", {"layer": "conv", "steps": 8}),
])
def test_a_side_input_gives_what_folding_it_into_the_model_gives(method, params):
    model, (img, side) = ImageAndSide(), _images()
    both = pellucid.explain(model, ModelInputs((img, side), explain=0), method, target=2, batch_size=2,
                            **params)
    folded_params = {**params, "layer": "model.conv"} if "layer" in params else params
    for i in range(len(img)):  # one row at a time, that row's side vector folded in
        alone = pellucid.explain(Folded(model, side[i:i + 1]), img[i:i + 1], method, target=2,
                                 **folded_params)
        torch.testing.assert_close(both.values[i:i + 1], alone.values, atol=1e-5, rtol=1e-4)
    assert both.inputs.shape == img.shape and both.values.shape[0] == 5


BANDS = torch.arange(64).view(1, 8, 8) // 16  # four horizontal bands of a 1 x 8 x 8 image


@pytest.mark.parametrize("method, params", [
    ("occlusion", {"window": (1, 4, 4), "stride": (1, 4, 4)}),
    ("exact_shapley", {"background": 0.5, "groups": BANDS}),
    ("kernel_shap", {"background": torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(9)),
                     "groups": BANDS, "samples": 64}),
])
def test_perturbation_methods_carry_the_side_input_to_every_coalition(method, params):
    """Every coalition of row i is run with row i's side vector, and v(empty) is per row."""
    model, (img, side) = ImageAndSide(), _images()
    both = pellucid.explain(model, ModelInputs((img, side), explain=0), method, target=2, batch_size=7,
                            **params)
    for i in range(len(img)):
        alone = pellucid.explain(Folded(model, side[i:i + 1]), img[i:i + 1], method, target=2, **params)
        torch.testing.assert_close(both.values[i:i + 1], alone.values, atol=1e-5, rtol=1e-4)
        if both.baseline_outputs is not None:
            torch.testing.assert_close(both.baseline_outputs[i:i + 1], alone.baseline_outputs)


@pytest.mark.parametrize("method, params", [
    ("lime", {"samples": 50, "batch_size": 16}), ("smoothgrad", {"samples": 6, "batch_size": 4}),
])
def test_random_methods_carry_a_shared_side_input_to_every_sample(method, params):
    """LIME's samples and SmoothGrad's noisy copies: with one side vector for every row, the same
    seed gives what the model with that vector folded in gives."""
    model, (img, _) = ImageAndSide(), _images()
    side = torch.rand(1, 3, generator=torch.Generator().manual_seed(4))
    both = pellucid.explain(model, ModelInputs((img, side.expand(5, -1)), explain=0), method,
                            target=2, seed=0, **params)
    folded = pellucid.explain(Folded(model, side), img, method, target=2, seed=0, **params)
    torch.testing.assert_close(both.values, folded.values, atol=1e-6, rtol=1e-5)


def test_explain_names_the_side_input_and_chunks_never_mix_rows():
    model, (img, side) = ImageAndSide(), _images()
    big = pellucid.integrated_gradients(model, ModelInputs((img, side), explain=1), target=0, steps=8)
    small = pellucid.integrated_gradients(model, ModelInputs((img, side), explain=1), target=0, steps=8,
                                          batch_size=3)
    assert big.values.shape == side.shape
    torch.testing.assert_close(big.values, small.values, atol=1e-6, rtol=1e-5)
    assert float(big.delta.abs().max()) < 1e-3  # completeness w.r.t. the side input


def _sentences():
    ids = torch.tensor([[5, 7, 9, 0, 0, 0], [3, 4, 11, 12, 13, 2], [8, 6, 0, 0, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def test_the_mask_travels_with_its_ids_through_layer_integrated_gradients():
    """The same sentence alone and padded into a batch with longer ones gets the same token
    values: every path point is run with its own row's mask."""
    model, batch = Bag(), _sentences()
    e = pellucid.integrated_gradients(model, batch, target=1, layer="emb", steps=32, batch_size=5)
    alone = pellucid.integrated_gradients(
        model, {"input_ids": batch["input_ids"][:1, :3], "attention_mask": torch.ones(1, 3, dtype=torch.long)},
        target=1, layer="emb", steps=32)
    torch.testing.assert_close(e.values[0, :3].sum(-1), alone.values[0].sum(-1), atol=1e-5, rtol=0)
    assert float(e.values[0, 3:].abs().max()) == 0.0  # padding positions are never attributed
    assert float(e.delta.abs().max()) < 1e-4


def test_layer_integrated_gradients_equals_captum_with_the_mask_carried():
    captum = pytest.importorskip("captum.attr")
    model, batch = Bag(), _sentences()
    ours = pellucid.integrated_gradients(model, batch, target=1, layer="emb", steps=20,
                                         rule="riemann_trapezoid")
    lig = captum.LayerIntegratedGradients(model, model.emb)
    theirs = lig.attribute(batch["input_ids"], baselines=torch.zeros_like(batch["input_ids"]), target=1,
                           additional_forward_args=(batch["attention_mask"],), n_steps=20,
                           method="riemann_trapezoid")
    # Captum weights its trapezoid nodes by 1/n instead of 1/(n-1) (see test_against_captum.py)
    torch.testing.assert_close(ours.values * 19 / 20, theirs, atol=1e-5, rtol=1e-4)


def test_several_inputs_are_refused_clearly_where_they_cannot_work():
    model, batch = Bag(), _sentences()
    with pytest.raises(InputError, match="token ids.*layer='emb'"):
        pellucid.saliency(model, batch)
    with pytest.raises(InputError, match="explain='labels' names no input.*input_ids"):
        pellucid.saliency(model, ModelInputs(batch, explain="labels"))
    with pytest.raises(InputError, match="attention_mask is shaped \\(3, 5\\) but input_ids \\(3, 6\\)"):
        pellucid.integrated_gradients(model, {**batch, "attention_mask": batch["attention_mask"][:, :5]},
                                      layer="emb")
    with pytest.raises(InputError, match="has 2 rows but the explained input 'input_ids' has 3"):
        pellucid.integrated_gradients(model, {**batch, "attention_mask": batch["attention_mask"][:2]},
                                      layer="emb")
    img, side = _images()
    with pytest.raises(InputError, match="no way to tell which one to explain.*ModelInputs"):
        pellucid.saliency(lambda a, b: a.sum((1, 2, 3)) + b.sum(1), (img, torch.rand(5, 2)))
    with pytest.raises(InputError, match="lrp does not take several model inputs yet"):
        pellucid.lrp(ImageAndSide(), ModelInputs((img, side), explain=0))
    with pytest.raises((InputError, NotDifferentiableError)):
        import numpy as np

        pellucid.kernel_shap(lambda a: np.asarray(a).sum(1), (img.flatten(1), side), background=0)


def test_the_model_is_left_without_the_calls_inputs():
    model, (img, side) = ImageAndSide(), _images()
    m = pellucid.wrap(model)
    pellucid.saliency(m, ModelInputs((img, side), explain=0))
    assert m.carried is None
    with pytest.raises(Exception):
        pellucid.saliency(m, ModelInputs((img, side), explain=0), target=99)
    assert m.carried is None


def test_a_causal_language_model_is_explained_at_its_next_token():
    """GPT-2 (a small random config): the logits (n, tokens, vocab) are read at each row's last
    non-padding position, so a right-padded batch explains each sentence's own next token and a
    sentence alone gets the same token values."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=40, n_positions=16, n_embd=32, n_layer=2, n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.tensor([[5, 7, 9, 11, 0, 0], [3, 4, 8, 12, 13, 2]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    e = pellucid.integrated_gradients(model, {"input_ids": ids, "attention_mask": mask},
                                      layer="transformer.wte", steps=16)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    expected = torch.stack([logits[0, 3], logits[1, 5]])
    assert e.target.tolist() == expected.argmax(1).tolist()
    torch.testing.assert_close(e.outputs, expected.gather(1, e.target[:, None]).squeeze(1))
    alone = pellucid.integrated_gradients(model, {"input_ids": ids[:1, :4], "attention_mask": mask[:1, :4]},
                                          layer="transformer.wte", steps=16, target=e.target[:1])
    torch.testing.assert_close(e.values[0, :4].sum(-1), alone.values[0].sum(-1), atol=1e-5, rtol=1e-4)
    assert float(e.delta.abs().max()) < 1e-2 * float(e.outputs.abs().max())
