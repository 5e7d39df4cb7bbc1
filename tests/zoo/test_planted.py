"""pellucid.zoo.planted: data whose ground truth is planted, and the small models trained on them."""
from __future__ import annotations

import pytest
import torch

from pellucid.zoo import (
    planted_patches,
    planted_sentences,
    planted_tabular,
    planted_tabular_mlp,
    planted_text_model,
)
from pellucid.zoo.planted import DISTRACTORS, FILLER, PATTERNS, POSITIVE, WORDS, PatchCNN


def test_patches_plant_the_class_pattern_under_the_mask():
    state = torch.get_rng_state()
    x, y, mask = planted_patches(300, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    assert x.shape == mask.shape == (300, 1, 16, 16) and y.shape == (300,)
    assert x.dtype == torch.float32 and mask.dtype == torch.bool and 0 <= x.min() and x.max() <= 1
    assert set(y.tolist()) == {0, 1, 2, 3}
    assert torch.equal(mask.sum(dim=(1, 2, 3)), torch.full((300,), 16))
    # the 4x4 square under the mask is exactly the class pattern
    inside = x[mask].view(300, 4, 4)
    assert torch.equal(inside, PATTERNS[y])
    # three full-contrast patches per image (8 bright pixels each); background noise stays < 0.5
    assert torch.equal((x == 1).sum(dim=(1, 2, 3)), torch.full((300,), 24))
    assert bool((x[~mask.expand_as(x) & (x != 1) & (x != 0)] < 0.5).all())


def test_patches_are_seeded_and_have_a_none_class():
    a, b = planted_patches(50, seed=1), planted_patches(50, seed=1)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(planted_patches(50, seed=2).x, a.x)
    x, y, mask = planted_patches(400, none=0.5, seed=0)
    empty = y == len(PATTERNS)
    assert 150 < int(empty.sum()) < 250
    assert not bool(mask[empty].any()) and bool(mask[~empty].any(dim=(1, 2, 3)).all())
    # "none" images hold as many bright patches as the others: their count gives nothing away
    assert torch.equal((x == 1).sum(dim=(1, 2, 3)), torch.full((400,), 24))
    assert len(DISTRACTORS) == 2 and not any(
        torch.equal(p, d) for p in PATTERNS for d in DISTRACTORS)


def test_patches_reject_bad_sizes():
    with pytest.raises(ValueError):
        planted_patches(4, patch=3)
    with pytest.raises(ValueError):
        planted_patches(4, size=8, distractors=2)


def test_tabular_label_depends_on_the_informative_features_only():
    d = planted_tabular(500, features=8, informative=3, seed=4)
    assert d.x.shape == (500, 8) and d.informative.tolist() == [0, 1, 2]
    assert torch.equal(d.y, (d.x[:, 0] - d.x[:, 1] + d.x[:, 2] > 0).long())
    assert d.mask.shape == (500, 8) and d.mask[:, :3].all() and not d.mask[:, 3:].any()
    # the noise features are independent of the label
    corr = torch.corrcoef(torch.cat([d.x.T, d.y[None].float()]))[-1, :-1]
    assert corr[:3].abs().min() > 0.3 and corr[3:].abs().max() < 0.15


def test_sentences_hold_one_decisive_word_at_the_mask():
    s = planted_sentences(200, length=10, seed=5)
    assert s.tokens.shape == s.mask.shape == (200, 10)
    assert torch.equal(s.mask.sum(dim=1), torch.ones(200, dtype=torch.long))
    decisive = s.tokens[s.mask]
    assert bool((decisive >= len(FILLER)).all()) and bool((s.tokens[~s.mask] < len(FILLER)).all())
    assert torch.equal(s.y, (decisive < len(FILLER) + len(POSITIVE)).long())
    assert s.one_hot().shape == (200, 10, len(WORDS))
    assert len(s.words(0)) == 10 and s.words(0)[int(s.mask[0].nonzero())] in WORDS[len(FILLER):]


def test_patch_cnn_is_accurate(planted_cnn):
    model, info = planted_cnn
    assert isinstance(model, PatchCNN) and not model.training
    assert info["test_accuracy"] >= 0.95 and info["cam_layer"] == "features.4"
    x, y, _ = planted_patches(300, seed=77)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() >= 0.95


def test_tabular_mlp_trains_caches_and_leaves_global_rng(tmp_path):
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    model, info = planted_tabular_mlp(cache_dir=tmp_path)
    assert torch.equal(state, torch.get_rng_state()) and torch.get_num_threads() == threads
    assert info["cached"] is False and info["test_accuracy"] >= 0.95
    again, info2 = planted_tabular_mlp(cache_dir=tmp_path)
    assert info2["cached"] is True and info2["test_accuracy"] == info["test_accuracy"]
    x = planted_tabular(20, seed=9).x
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_text_model_reads_ids_and_one_hot(tmp_path):
    model, info = planted_text_model(cache_dir=tmp_path)
    assert info["test_accuracy"] >= 0.99
    s = planted_sentences(50, seed=8)
    with torch.no_grad():
        assert torch.allclose(model(s.tokens), model(s.one_hot()), atol=1e-6)
