"""Shared fixtures: small models with known answers, and a check that models are left as found."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

os.environ.setdefault("PELLUCID_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


class SmallCNN(nn.Module):
    """A nonlinear CNN for 1x8x8 inputs, with a named conv layer for CAM methods."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.Tanh(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.Softplus(),
                                        nn.Dropout(0.5), nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@pytest.fixture
def cnn() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN()


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 1, 8, 8, generator=g)


def _snapshot(model: nn.Module) -> dict:
    """Everything a method must leave unchanged on a module tree."""
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": [
            sum(len(d) for name, d in vars(m).items() if name.endswith("_hooks") and isinstance(d, dict))
            for m in model.modules()
        ],
    }


def _assert_same_state(before: dict, after: dict) -> None:
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert before["hooks"] == after["hooks"]
    assert before["params"].keys() == after["params"].keys()
    for k in before["params"]:
        assert torch.equal(before["params"][k], after["params"][k]), k
    for a, b in zip(before["grads"], after["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)


class ModelState:
    """What the ``model_state`` fixture gives a test: ``before = model_state.snapshot(net)``, run
    the method, then ``model_state.assert_same(before, model_state.snapshot(net))``."""

    snapshot = staticmethod(_snapshot)
    assert_same = staticmethod(_assert_same_state)


@pytest.fixture
def model_state() -> ModelState:
    """Snapshots of a module tree's state and the check that a method left it as found."""
    return ModelState()


@pytest.fixture(scope="session")
def planted_cnn(tmp_path_factory):
    """The planted-patch CNN, trained once per session (a few seconds) in a private cache."""
    from pellucid.zoo import planted_patch_cnn

    return planted_patch_cnn(cache_dir=tmp_path_factory.mktemp("planted_cache"))


_TORCHVISION = ("torchvision", "torchvision.models", "torchvision.models.resnet")


def _import_peer(name: str):
    """Import a test-only peer (``zennit``, ``quantus``), skipping the test when it is missing.

    Zennit imports torchvision's ResNet block classes when it is imported, and quantus imports
    zennit whenever zennit is installed; torchvision does not load here. So if torchvision cannot
    be imported, small stand-ins for those three modules are put into ``sys.modules`` just for the
    import and taken out again (zennit keeps the classes; transformers, imported later, must not
    see a torchvision without a spec).
    """
    import sys
    import types

    try:
        import torchvision.models.resnet  # noqa: F401
    except Exception:
        for mod in _TORCHVISION:
            sys.modules.pop(mod, None)
        tv, models, resnet = (types.ModuleType(n) for n in _TORCHVISION)

        class BasicBlock(nn.Module):
            expansion = 1

        class Bottleneck(nn.Module):
            expansion = 4

        resnet.BasicBlock, resnet.Bottleneck = BasicBlock, Bottleneck
        tv.models, models.resnet = models, resnet
        sys.modules.update(dict(zip(_TORCHVISION, (tv, models, resnet))))
        try:
            return pytest.importorskip(name)
        finally:
            for mod in _TORCHVISION:
                sys.modules.pop(mod, None)
    return pytest.importorskip(name)



@pytest.fixture(scope="session")
def peer():
    """``peer("quantus")``: a test-only peer imported (torchvision stand-ins lent for the import
    only, see :func:`_import_peer`), or the test skipped when it is not installed."""
    return _import_peer
