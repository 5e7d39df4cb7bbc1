"""pellucid.features.activations: layer outputs by hooks, call sites of reused modules."""
from __future__ import annotations

import pytest
import torch

from pellucid import features as F
from pellucid.errors import LayerError


def test_activations_equal_plain_forward_and_leave_no_hooks(cnn, images, model_state):
    cnn.train()
    before = model_state.snapshot(cnn)
    acts = F.activations(cnn, images, layers=["features.0", "features.3", "classifier.2"],
                         batch_size=4)
    model_state.assert_same(before, model_state.snapshot(cnn))
    cnn.eval()
    with torch.no_grad():
        a0 = cnn.features[0](images)
        a3 = cnn.features[:4](images)
        c2 = cnn.classifier[:3](cnn.features(images))
    torch.testing.assert_close(acts["features.0"], a0, rtol=0, atol=1e-6)
    torch.testing.assert_close(acts["features.3"], a3, rtol=0, atol=1e-6)
    torch.testing.assert_close(acts["classifier.2"], c2, rtol=0, atol=1e-6)


def test_activations_unknown_layer_is_clear(cnn, images):
    with pytest.raises(LayerError, match="unknown layer 'conv9'"):
        F.activations(cnn, images, layers="conv9")
