"""ResNet-18 and ResNet-50 written as torchvision writes them, in plain PyTorch, untrained.

The point is the *architecture*, not the weights: each block holds ONE ``nn.ReLU(inplace=True)``
module and calls it two (BasicBlock) or three (Bottleneck) times, the residual is added in place
(``out += identity``) — exactly the constructs that break methods which attach state to modules
or read activations after an in-place operation has overwritten them. ``inplace=False`` builds
the same network (the same weights for the same ``seed``) with out-of-place ReLUs, as a reference.

Initialisation follows torchvision (Kaiming-normal convolutions, fan-out, ReLU gain; BatchNorm
weight 1, bias 0); ``seed`` makes it reproducible without touching the global RNG. As in
torchvision, a fresh BatchNorm's running statistics are (0, 1), so in eval mode it is nearly the
identity; tests that want trained-like BatchNorm draw those statistics themselves.

Reference: He et al., 2016, "Deep Residual Learning for Image Recognition", CVPR;
``torchvision.models.resnet``.

>>> import torch
>>> net = resnet18(seed=0, base_channels=8).eval()
>>> net(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 10])
>>> net.layer1[0].relu.inplace
True
"""
from __future__ import annotations

import torch
from torch import nn

from .._common import check_positive_int
from .models import _seeded

__all__ = ["ResNet", "resnet18", "resnet50"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class _BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, ``+=`` the (projected) input, ReLU — one ReLU module, twice."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 inplace: bool) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=inplace)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class _Bottleneck(nn.Module):
    """conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN, ``+=`` the input, ReLU — one ReLU, three calls."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None,
                 inplace: bool) -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=inplace)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's ResNet: 7x7/2 stem conv, BN, ReLU, 3x3/2 max pool, four stages, global
    average pool, linear. ``base_channels`` is the first stage's channel count (64 in torchvision)."""

    def __init__(self, block: type, layers: list[int], classes: int = 10, *,
                 base_channels: int = 64, inplace: bool = True, seed: int | None = None) -> None:
        super().__init__()
        check_positive_int(classes, "classes")
        check_positive_int(base_channels, "base_channels")
        with _seeded(seed):
            self._cin = base_channels
            self.conv1 = nn.Conv2d(3, base_channels, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(base_channels)
            self.relu = nn.ReLU(inplace=inplace)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            self.layer1 = self._stage(block, base_channels, layers[0], 1, inplace)
            self.layer2 = self._stage(block, base_channels * 2, layers[1], 2, inplace)
            self.layer3 = self._stage(block, base_channels * 4, layers[2], 2, inplace)
            self.layer4 = self._stage(block, base_channels * 8, layers[3], 2, inplace)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(base_channels * 8 * block.expansion, classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        del self._cin

    def _stage(self, block: type, planes: int, blocks: int, stride: int, inplace: bool) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._cin != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self._cin, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self._cin, planes, stride, downsample, inplace)]
        self._cin = planes * block.expansion
        layers += [block(self._cin, planes, 1, None, inplace) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(classes: int = 10, *, base_channels: int = 64, inplace: bool = True,
             seed: int | None = None) -> ResNet:
    """ResNet-18 (BasicBlocks 2-2-2-2; 11.2 M parameters at ``base_channels=64``, 1000 classes), untrained.

    One forward pass costs about 1.8 G multiply-adds per 224x224 image at ``base_channels=64``
    (about 37 M at 32x32); the cost scales with ``base_channels²``.
    """
    return ResNet(_BasicBlock, [2, 2, 2, 2], classes,
                  base_channels=base_channels, inplace=inplace, seed=seed)


def resnet50(classes: int = 10, *, base_channels: int = 64, inplace: bool = True,
             seed: int | None = None) -> ResNet:
    """ResNet-50 (Bottlenecks 3-4-6-3; 25.6 M parameters at ``base_channels=64``, 1000 classes), untrained.

    One forward pass costs about 4.1 G multiply-adds per 224x224 image at ``base_channels=64``
    (about 85 M at 32x32); the cost scales with ``base_channels²``.
    """
    return ResNet(_Bottleneck, [3, 4, 6, 3], classes,
                  base_channels=base_channels, inplace=inplace, seed=seed)
