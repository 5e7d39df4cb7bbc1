"""Small untrained architectures used to exercise methods on realistic layer types.

`TinyResNet` has batch norm, residual additions and a strided downsampling shortcut — the
constructs that trip up LRP rules, canonizers and layer hooks. `GapCNN` is the smallest network
for which CAM is exact: with conv -> ReLU -> global average pool -> linear, the logit equals the
spatial mean of the class activation map plus the bias (Zhou et al., 2016, "Learning Deep
Features for Discriminative Localization", CVPR).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Draw initial weights from `seed` when given, leaving the caller's global RNG untouched."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN, plus the (projected) input, then ReLU.

    He et al., 2016, "Deep Residual Learning for Image Recognition", CVPR.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual forward pass."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class TinyResNet(nn.Module):
    """A two-block ResNet for 3x32x32 inputs (19,994 parameters at 10 classes); untrained.

    stem (conv3x3 3->16, BN, ReLU) -> block1 (16->16) -> block2 (16->32, stride 2, 1x1 projection)
    -> global average pool -> flatten -> linear(32, num_classes). One forward pass costs about
    9 M multiply-adds per image. Pass `seed` for reproducible initialisation (the global RNG is
    untouched).

    Example:
        >>> model = TinyResNet(seed=0).eval()
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, *, seed: int | None = None) -> None:
        super().__init__()
        with _seeded(seed):
            self.stem = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1, bias=False),
                nn.BatchNorm2d(16),
                nn.ReLU(),
            )
            self.block1 = BasicBlock(16, 16, stride=1)
            self.block2 = BasicBlock(16, 32, stride=2)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shaped (n, num_classes)."""
        x = self.block2(self.block1(self.stem(x)))
        return self.fc(self.flatten(self.pool(x)))


class GapCNN(nn.Module):
    """conv3x3 -> ReLU -> global average pool -> linear: the network for which CAM is exact.

    For input x, logit_c = mean_{h,w} sum_k fc.weight[c, k] * relu(conv(x))[k, h, w] + fc.bias[c]
    (Zhou et al., 2016). Untrained; pass `seed` for reproducible initialisation.

    Example:
        >>> GapCNN(seed=0)(torch.zeros(4, 1, 8, 8)).shape
        torch.Size([4, 3])
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 8,
        num_classes: int = 3,
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        with _seeded(seed):
            self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
            self.relu = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shaped (n, num_classes)."""
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))
