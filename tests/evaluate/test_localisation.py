"""Localisation metrics: hand-computed cases, Quantus, and the planted-patch data."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pellucid
from pellucid.errors import InputError
from pellucid.evaluate import pointing_game, relevance_mass, relevance_rank
from pellucid.zoo import (
    planted_patches,
    planted_sentences,
    planted_tabular,
    planted_tabular_mlp,
    planted_text_model,
)


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


# -- pointing game ---------------------------------------------------------------------------------
def test_pointing_game_by_hand():
    a = t([[[[0, 1, 0], [0, 0, 0], [0, 0, 5]]], [[[9, 0, 0], [0, 0, 0], [0, 0, 0]]]])
    m = torch.zeros(2, 1, 3, 3, dtype=torch.bool)
    m[:, 0, 2, 2] = True
    s = pointing_game(a, m)
    assert s.values.tolist() == [1.0, 0.0] and s.higher_is_better and s.name == "pointing_game"
    assert s.meta["chance"] == pytest.approx(1 / 9)


def test_pointing_game_ties_split_and_empty_mask_is_nan():
    # four tied maxima, one of them in the mask: a random tie-break hits one time in four
    a = t([[[[2, 2], [2, 2]]], [[[1, 0], [0, 0]]]])
    m = torch.tensor([[[[True, False], [False, False]]], [[[False, False], [False, False]]]])
    v = pointing_game(a, m).values
    assert v[0] == 0.25 and math.isnan(v[1])


def test_pointing_game_tolerance_is_a_euclidean_disk():
    a = torch.zeros(3, 1, 7, 7)
    a[0, 0, 3, 4] = 1  # one step right of the mask pixel (3, 3): distance 1
    a[1, 0, 4, 4] = 1  # diagonal: distance sqrt 2
    a[2, 0, 3, 5] = 1  # distance 2
    m = torch.zeros(3, 1, 7, 7, dtype=torch.bool)
    m[:, 0, 3, 3] = True
    assert pointing_game(a, m).values.tolist() == [0, 0, 0]
    assert pointing_game(a, m, tolerance=1).values.tolist() == [1, 0, 0]
    assert pointing_game(a, m, tolerance=2).values.tolist() == [1, 1, 1]
    assert pointing_game(a, m, tolerance=1).meta["chance"] == pytest.approx(5 / 49)


def test_channels_are_summed_and_masks_broadcast():
    # channel 0 peaks at (0, 0), channel 1 at (1, 1); their sum peaks at (1, 1)
    a = t([[[[3, 0], [0, 2]], [[0, 0], [0, 2]]]])
    m = torch.tensor([[[[False, False], [False, True]]]])
    assert pointing_game(a, m).values.item() == 1  # mask (n, 1, H, W)
    assert pointing_game(a, m.expand(1, 2, 2, 2)).values.item() == 1  # mask like the inputs
    assert pointing_game(a, m[:, 0]).values.item() == 1  # mask (n, H, W)
    assert pointing_game(a, m, abs=True).values.item() == 1  # |3| vs |2| + |2|
    # a CAM (n, 1, H, W) against a mask shaped like 3-channel inputs
    cam = t([[[[0, 1], [0, 0]]]])
    rgb_mask = torch.zeros(1, 3, 2, 2, dtype=torch.bool)
    rgb_mask[0, 1, 0, 1] = True
    assert pointing_game(cam, rgb_mask).values.item() == 1
    # channels last: one-hot tokens (n, L, V) against a token mask (n, L)
    tokens = torch.zeros(1, 3, 5)
    tokens[0, 2, 4] = 1.0
    assert pointing_game(tokens, torch.tensor([[False, False, True]])).values.item() == 1


def test_shape_mismatch_raises():
    with pytest.raises(InputError, match="upsample"):
        pointing_game(torch.rand(2, 1, 4, 4), torch.ones(2, 1, 8, 8, dtype=torch.bool))
    with pytest.raises(InputError, match="rows"):
        relevance_mass(torch.rand(2, 4), torch.ones(3, 4, dtype=torch.bool))


# -- relevance mass and rank -----------------------------------------------------------------------
def test_relevance_mass_by_hand():
    a = t([[3, -1, 1, 0], [-1, -2, 0, 0]])
    m = torch.tensor([[True, False, False, False], [True, False, False, False]])
    v = relevance_mass(a, m).values
    assert v[0].item() == pytest.approx(3 / 4)  # positive relevance only: 3 / (3 + 1)
    assert math.isnan(v[1])  # no positive relevance at all
    assert relevance_mass(a, m, abs=True).values.tolist() == pytest.approx([3 / 5, 1 / 3])


def test_relevance_rank_by_hand_with_ties():
    a = t([[4, 3, 2, 1], [1, 1, 1, 1], [5, 2, 2, 0]])
    m = torch.tensor([[True, False, True, False], [True, False, False, False],
                      [True, True, False, False]])
    # row 0: K=2, top-2 = {0, 1}, one in the mask -> 1/2
    # row 1: K=1, four tied values -> expected 1/4
    # row 2: K=2, top = {0} plus one of the tied {1, 2} -> (1 + 1/2) / 2
    assert relevance_rank(a, m).values.tolist() == pytest.approx([0.5, 0.25, 0.75])


# -- against Quantus -------------------------------------------------------------------------------
def _quantus_scores(metric, a, s, **options):
    q = metric(disable_warnings=True, **options)(
        model=None, x_batch=np.zeros(a.shape, dtype=np.float32), y_batch=np.zeros(len(a), dtype=int),
        a_batch=a.numpy(), s_batch=s.numpy().astype(np.float32))
    return np.asarray(q, dtype=float)


def test_agrees_with_quantus(peer):
    """Quantus 0.6 agrees on pointing game (unique maxima), relevance rank and, with
    ``abs=True``, relevance mass. Its defects, shown by hand in the next test:

    - ``RelevanceMassAccuracy`` with ``abs=False`` divides all relevance inside by all relevance
      (negative included), so the "accuracy" leaves [0, 1]; Arras et al. use positive relevance.
    - ``PointingGame`` marks an empty mask as a hit: ``hit[s.sum() == 0] = np.nan`` writes NaN
      into a boolean array, which stores True.
    - ``PointingGame`` counts a row as a hit when *any* tied maximum is in the mask, so a
      constant map always hits.
    """
    quantus = peer("quantus")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(12, 1, 6, 6, generator=g)
    s = torch.rand(12, 1, 6, 6, generator=g) > 0.7
    for options in ({"abs": False, "normalise": False}, {"abs": True, "normalise": True}):
        np.testing.assert_allclose(
            _quantus_scores(quantus.PointingGame, a, s, **options),
            pointing_game(a, s, abs=options["abs"]).values.numpy())
        np.testing.assert_allclose(
            _quantus_scores(quantus.RelevanceRankAccuracy, a, s, **options),
            relevance_rank(a, s, abs=options["abs"]).values.numpy(), atol=1e-12)
    np.testing.assert_allclose(
        _quantus_scores(quantus.RelevanceMassAccuracy, a, s, abs=True, normalise=True),
        relevance_mass(a, s, abs=True).values.numpy(), rtol=1e-6)


def test_quantus_defects_by_hand(peer):
    quantus = peer("quantus")
    a = t([[[[3, -1], [1, 0]]], [[[1, 0], [0, 0]]], [[[2, 2], [2, 2]]]])
    s = torch.tensor([[[[1, 0], [0, 0]]], [[[0, 0], [0, 0]]], [[[1, 0], [0, 0]]]], dtype=torch.bool)
    raw = {"abs": False, "normalise": False}
    # relevance mass of row 0: positive relevance 3 + 1, of which 3 inside -> 0.75;
    # Quantus: 3 / (3 - 1 + 1 + 0) = 1.0
    assert relevance_mass(a[:1], s[:1]).values.item() == 0.75
    assert _quantus_scores(quantus.RelevanceMassAccuracy, a[:1], s[:1], **raw)[0] == 1.0
    # pointing game: row 1 has no mask (NaN, not a hit); row 2 is constant (1 in 4 maxima inside)
    ours = pointing_game(a[1:], s[1:]).values
    assert math.isnan(ours[0]) and ours[1] == 0.25
    assert _quantus_scores(quantus.PointingGame, a[1:], s[1:], **raw).tolist() == [1.0, 1.0]


# -- the planted data (the done-when) ------------------------------------------------------
def test_planted_patches_grad_cam_and_ig_point_random_does_not(planted_cnn):
    model, info = planted_cnn
    x, y, mask = planted_patches(300, seed=2024)
    cam = pellucid.explain(model, x, method="grad_cam", layer=info["cam_layer"])
    ig = pellucid.explain(model, x[:150], method="integrated_gradients", steps=16)
    rnd = pellucid.explain(model, x, method="random", seed=0)
    inp = pellucid.explain(model, x, method="input")
    scores = {name: pointing_game(e, mask[: len(e)]).mean
              for name, e in {"grad_cam": cam, "ig": ig, "random": rnd, "input": inp}.items()}
    chance = pointing_game(rnd, mask).meta["chance"]
    assert chance == 1 / 16
    assert scores["grad_cam"] >= 0.9 and scores["ig"] >= 0.9, scores
    assert abs(scores["random"] - chance) < 0.05, scores
    # the input itself points at one of three equally bright patches: well below the methods
    assert scores["input"] < 0.5, scores
    assert relevance_mass(ig, mask[:150]).mean > 3 * relevance_mass(rnd, mask).mean
    assert relevance_rank(cam, mask).mean > 3 * relevance_rank(rnd, mask).mean


def test_planted_tabular_and_text(tmp_path):
    mlp, _ = planted_tabular_mlp(cache_dir=tmp_path)
    d = planted_tabular(200, seed=11)
    ig = pellucid.explain(mlp, d.x, method="integrated_gradients", steps=16)
    rnd = pellucid.explain(mlp, d.x, method="random", seed=1)
    assert relevance_rank(ig, d.mask, abs=True).mean >= 0.9
    assert abs(relevance_rank(rnd, d.mask, abs=True).mean - 0.3) < 0.1

    text, _ = planted_text_model(cache_dir=tmp_path)
    s = planted_sentences(200, seed=11)
    ig = pellucid.explain(text, s.one_hot(), method="integrated_gradients", steps=16)
    assert pointing_game(ig, s.mask, abs=True).mean == 1.0
    assert relevance_mass(ig, s.mask, abs=True).mean > 0.8
