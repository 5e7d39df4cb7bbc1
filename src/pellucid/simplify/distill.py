"""Knowledge distillation: train a small student to imitate a teacher's softened outputs.

Loss per minibatch (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural
Network"):

    L = α · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)) + (1 - α) · CE(z_s, y)

with teacher logits ``z_t``, student logits ``z_s`` and temperature ``T``; the ``T²`` keeps the
soft term's gradients on the scale of the hard one. ``y`` are the labels when ``data`` has them,
else the teacher's own predictions. How well the student says the same is its *fidelity*: the
share of held-out rows on which it predicts the teacher's class.

Cost: one teacher forward pass over ``data`` (the teacher's logits are computed once), then
``epochs · n`` student forward and backward passes.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._common import check_fraction, check_positive
from .._deprecation import renamed
from ..errors import ModelError
from ._data import train_and_test
from ._report import DistillReport, Simplified, recorded
from ._training import Schedule, agreement, as_module, classes, copy_module, count_parameters, fit, predict

__all__ = ["distill"]


@renamed(batch_size="train_batch_size")
@recorded("student", "test")
def distill(
    teacher: Any,
    data: Any,
    *,
    student: nn.Module,
    temperature: float = 4.0,
    alpha: float = 0.9,
    epochs: int = 30,
    lr: float = 1e-2,
    train_batch_size: int = 64,
    test: Any = None,
    holdout: float = 0.2,
    seed: int = 0,
    progress: bool | None = None,
) -> Simplified:
    """Train a copy of ``student`` to imitate ``teacher`` on ``data``; returns
    ``Simplified(model=trained student, report=DistillReport)``.

    Neither the teacher nor the ``student`` passed in is changed: a copy of the student is
    trained and returned.

    Options:
        data: training inputs, or ``(inputs, labels)``.
        student: an untrained (or pre-trained) ``nn.Module`` with the teacher's output width.
        temperature: softening temperature T (default 4.0, as in Hinton et al.).
        alpha: weight of the soft (teacher) term; ``1 - alpha`` goes to the hard labels (default 0.9).
        epochs, lr, train_batch_size: Adam training in minibatches of ``train_batch_size`` rows
            (defaults 30, 1e-2, 64; ``batch_size=`` is the deprecated old name of the last).
        test: held-out inputs (or ``(inputs, labels)``) for the fidelity; default: ``holdout`` of
            ``data`` (a seeded share, 0.2) is kept out of training for it.
        seed: the split, shuffling and dropout (the global RNG is left as found).
        progress: a progress bar over the epochs on runs longer than two seconds.

    Example:
        >>> import torch
        >>> teacher = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
        >>> student, report = distill(teacher, torch.randn(500, 4), student=torch.nn.Linear(4, 3), epochs=5)
        >>> 0.0 <= report.fidelity <= 1.0
        True
    """
    temperature = check_positive(temperature, "temperature")
    alpha = check_fraction(alpha, "alpha", allow_zero=True)
    schedule = Schedule.checked(epochs, lr, train_batch_size)
    t_module, t_model = as_module(teacher, "distill (the teacher)")
    if not isinstance(student, nn.Module):
        raise ModelError(f"student must be a torch.nn.Module; got {type(student).__name__}")
    x, y, x_test, y_test = train_and_test(t_model, data, test, holdout, seed)
    t_train = predict(t_model, x, progress=progress)
    t_test = predict(t_model, x_test, progress=progress)

    s_module, s_model = copy_module(student, x.device)
    width = predict(s_model, x[:1]).shape[1]
    if width != t_train.shape[1]:
        raise ModelError(
            f"the student gives {width} output(s) per row but the teacher gives {t_train.shape[1]}; "
            "distillation matches them column by column, so give the student the teacher's output width"
        )
    hard = y if y is not None else classes(t_train)
    soft = F.log_softmax(t_train / temperature, dim=1)

    def loss(out: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        kl = F.kl_div(F.log_softmax(out / temperature, dim=1), soft[idx], log_target=True,
                      reduction="batchmean")
        return alpha * temperature ** 2 * kl + (1 - alpha) * F.cross_entropy(out, hard[idx])

    losses = fit(s_module, x, loss, schedule, seed=seed, progress=progress)
    s_test = predict(s_model, x_test, progress=progress)
    report = DistillReport(
        fidelity=agreement(t_test, s_test),
        teacher_parameters=count_parameters(t_module),
        student_parameters=count_parameters(s_module),
        losses=losses,
        train_fidelity=agreement(t_train, predict(s_model, x, progress=progress)),
    )
    if y_test is not None:
        report.teacher_accuracy = agreement(t_test, y_test)
        report.student_accuracy = agreement(s_test, y_test)
    return Simplified(s_module, report)
