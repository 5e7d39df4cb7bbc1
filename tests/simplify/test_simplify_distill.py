"""Tests for pellucid.simplify.distill (Hinton et al. 2015)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pellucid.errors import InputError, ModelError
from pellucid.simplify import DistillReport, Simplified, distill


def _student() -> nn.Module:
    torch.manual_seed(0)  # inside the test only; distill itself never touches the global RNG
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))  # 2,410 parameters


@pytest.mark.slow
def test_small_student_imitates_the_demo_cnn(model_state, digits):
    teacher, info, d = digits
    student = _student()
    t_before, s_before = model_state.snapshot(teacher), model_state.snapshot(student)
    rng = torch.get_rng_state()
    trained, report = distill(teacher, (d.x_train, d.y_train), student=student, epochs=20,
                              test=(d.x_test, d.y_test))
    assert torch.equal(rng, torch.get_rng_state())
    model_state.assert_same(t_before, model_state.snapshot(teacher))
    model_state.assert_same(s_before, model_state.snapshot(student))  # a copy was trained
    assert isinstance(report, DistillReport)
    assert report.student_parameters * 10 <= report.teacher_parameters
    assert report.fidelity >= 0.95, report
    with torch.no_grad():
        fidelity = float((trained(d.x_test).argmax(1) == teacher(d.x_test).argmax(1)).float().mean())
    assert fidelity == report.fidelity
    assert report.teacher_accuracy == pytest.approx(info["test_accuracy"])
    assert "fidelity" in str(report) and len(report.plot().axes) == 1


def test_pure_soft_loss_is_zero_for_a_copy_of_the_teacher(digits):
    teacher, _, d = digits
    _, report = distill(teacher, d.x_train[:256], student=copy.deepcopy(teacher), alpha=1.0,
                        epochs=1, lr=1e-9)
    assert report.losses[0] == pytest.approx(0.0, abs=1e-6)
    assert report.fidelity == 1.0


def test_holdout_split_is_used_without_test_data():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(300, 4)
    student = nn.Linear(4, 3)
    a = distill(teacher, x, student=student, epochs=3, seed=1)[1]
    b = distill(teacher, x, student=student, epochs=3, seed=1)[1]
    assert a.params["holdout"] == 0.2 and a.losses == b.losses and a.fidelity == b.fidelity


def test_old_batch_size_keyword_warns_and_means_the_minibatch():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    x, student = torch.randn(200, 4), nn.Linear(4, 3)
    new = distill(teacher, x, student=student, epochs=2, train_batch_size=32, progress=False)
    with pytest.warns(DeprecationWarning, match="train_batch_size"):
        old = distill(teacher, x, student=student, epochs=2, batch_size=32, progress=False)
    assert isinstance(old, Simplified) and old.report.losses == new.report.losses
    assert old.report.fidelity == new.report.fidelity and new.report.params["train_batch_size"] == 32


def test_clear_errors(digits):
    teacher, _, d = digits
    wide = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with pytest.raises(ModelError, match="output width"):
        distill(teacher, d.x_train[:50], student=wide, epochs=1)
    with pytest.raises(InputError, match="shape"):
        distill(teacher, torch.rand(20, 3, 8, 8), student=_student(), epochs=1)
    with pytest.raises(InputError, match="temperature"):
        distill(teacher, d.x_train[:50], student=_student(), temperature=0)
