"""Tests for pellucid.zoo: the digits data, the cached digits CNN and the small architectures."""

import pytest
import torch

from pellucid.zoo import GapCNN, TinyResNet, digits_cnn, load_digits
from pellucid.zoo.digits import DigitsCNN


def test_load_digits_shapes_dtypes_ranges():
    d = load_digits()
    assert d.x_train.shape == (1347, 1, 8, 8) and d.x_test.shape == (450, 1, 8, 8)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert len(d.y_train) == len(d.x_train) and len(d.y_test) == len(d.x_test)
    for x in (d.x_train, d.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() == 1.0
    assert set(d.y_train.tolist()) == set(range(10)) == set(d.y_test.tolist())
    # stratified: every class keeps its share of the test set to within one image
    counts = torch.bincount(d.y_test, minlength=10).float()
    total = torch.bincount(torch.cat([d.y_train, d.y_test]), minlength=10).float()
    assert torch.all((counts - 0.25 * total).abs() <= 1)


def test_load_digits_split_is_disjoint_and_seeded():
    d = load_digits(test_size=0.2, seed=3)
    assert len(d.x_train) + len(d.x_test) == 1797 and len(d.x_test) == 360
    train_rows = {tuple(r) for r in d.x_train.flatten(1).tolist()}
    test_rows = {tuple(r) for r in d.x_test.flatten(1).tolist()}
    assert not train_rows & test_rows  # no image in both halves (true for this seed)
    again = load_digits(test_size=0.2, seed=3)
    assert torch.equal(d.x_test, again.x_test) and torch.equal(d.y_test, again.y_test)
    assert not torch.equal(load_digits(test_size=0.2, seed=4).y_test, d.y_test)


def test_digits_cnn_trains_caches_and_reloads(tmp_path):
    rng_before = torch.get_rng_state()
    model, info = digits_cnn(cache_dir=tmp_path)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert isinstance(model, DigitsCNN) and not model.training
    assert info["cached"] is False and info["test_accuracy"] >= 0.95
    assert info["path"].is_file() and info["path"].parent == tmp_path
    assert list(tmp_path.iterdir()) == [info["path"]]  # no temp files left behind

    again, info2 = digits_cnn(cache_dir=tmp_path)
    assert info2["cached"] is True and info2["path"] == info["path"]
    assert info2["test_accuracy"] == info["test_accuracy"]
    x = load_digits().x_test
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_digits_cnn_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PELLUCID_CACHE", str(tmp_path / "env"))
    _, info = digits_cnn(pretrained=False)
    assert info["path"].parent == tmp_path / "env"
    monkeypatch.delenv("PELLUCID_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _, info = digits_cnn(pretrained=False)
    assert info["path"].parent == tmp_path / "xdg" / "pellucid"


def test_digits_cnn_untrained_is_seeded_and_writes_nothing(tmp_path):
    a, info = digits_cnn(pretrained=False, cache_dir=tmp_path, seed=5)
    b, _ = digits_cnn(pretrained=False, cache_dir=tmp_path, seed=5)
    assert info["cached"] is False and 0.0 <= info["test_accuracy"] <= 1.0
    assert not any(tmp_path.iterdir())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert dict(a.named_modules())["features.2"].__class__ is torch.nn.Conv2d


def test_tiny_resnet_forward_and_structure():
    model = TinyResNet(seed=0).eval()
    assert model(torch.rand(4, 3, 32, 32)).shape == (4, 10)
    assert TinyResNet(num_classes=7)(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    assert model.block1.downsample is None and model.block2.downsample is not None
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_tiny_resnet_seed_is_reproducible_and_leaves_rng_alone():
    rng_before = torch.get_rng_state()
    a, b = TinyResNet(seed=1), TinyResNet(seed=1)
    assert torch.equal(torch.get_rng_state(), rng_before)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    c = TinyResNet(seed=2)
    assert not torch.equal(a.stem[0].weight, c.stem[0].weight)


@pytest.mark.parametrize("in_channels, channels, num_classes", [(1, 8, 3), (3, 4, 5)])
def test_gap_cnn_forward_and_cam_identity(in_channels, channels, num_classes):
    model = GapCNN(in_channels, channels, num_classes, seed=0)
    x = torch.rand(6, in_channels, 8, 8)
    out = model(x)
    assert out.shape == (6, num_classes)
    # logit_c = mean over pixels of sum_k w_ck * A_k + b_c (Zhou et al., 2016)
    acts = model.relu(model.conv(x))
    cam = torch.einsum("ck,nkhw->nchw", model.fc.weight, acts)
    torch.testing.assert_close(cam.mean(dim=(2, 3)) + model.fc.bias, out)
    rng_before = torch.get_rng_state()
    assert torch.equal(GapCNN(seed=0).conv.weight, GapCNN(seed=0).conv.weight)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert [n for n, _ in model.named_children()] == ["conv", "relu", "pool", "flatten", "fc"]
