"""Models and data shared by the tests of pellucid.simplify, each built once per session."""
from __future__ import annotations

import types

import pytest
import torch
from torch import nn


@pytest.fixture(scope="session")
def digits():
    """``(model, info, data)``: the demo CNN (cached, ~0.989 test accuracy) and the digits split."""
    from pellucid.zoo import digits_cnn, load_digits

    model, info = digits_cnn()
    return model, info, load_digits()


@pytest.fixture(scope="session")
def breast_cancer():
    """A small MLP (30-32-32-2) trained on sklearn's breast-cancer data, standardised.

    Trained with pellucid.simplify.train (Adam, 20 epochs, a second or two); split 75/25
    stratified with seed 0.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from pellucid.simplify import train

    bunch = load_breast_cancer()
    xtr, xte, ytr, yte = train_test_split(bunch.data, bunch.target, test_size=0.25, random_state=0,
                                          stratify=bunch.target)
    scaler = StandardScaler().fit(xtr)
    xtr, xte = (torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (xtr, xte))
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    with torch.no_grad():  # seeded initialisation without touching the global RNG
        for p in net.parameters():
            p.uniform_(-1, 1, generator=g).mul_(1 / p.shape[-1] ** 0.5)
    model, _ = train(net, (xtr, ytr), epochs=20, lr=3e-3, train_batch_size=32)
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return types.SimpleNamespace(model=model, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                                 feature_names=list(bunch.feature_names),
                                 class_names=list(bunch.target_names), test_accuracy=acc)
