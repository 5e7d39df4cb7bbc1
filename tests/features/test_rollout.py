"""pellucid.features.attention_rollout and attention_flow on attention known by hand."""
from __future__ import annotations

import torch

from pellucid import features as F


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
