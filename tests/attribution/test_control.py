"""The control explanations used by sanity checks."""
from __future__ import annotations

import torch

import pellucid


def test_random_is_seeded_uniform_and_leaves_global_rng(cnn, images):
    state = torch.get_rng_state()
    a = pellucid.explain(cnn, images, method="random", seed=3)
    b = pellucid.explain(cnn, images, method="random", seed=3)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a.values, b.values) and a.values.shape == images.shape
    assert 0 <= a.values.min() and a.values.max() < 1
    cnn.eval()
    assert torch.equal(a.target, cnn(images).argmax(1))


def test_input_control_is_the_input(cnn, images):
    e = pellucid.explain(cnn, images, method="input", target=2)
    assert torch.equal(e.values, images) and e.target.tolist() == [2] * len(images)
