"""Make the pictures in docs/img that the docs pages show: `.venv/bin/python docs/make_images.py`.

Every picture comes from the zoo's models and data, so it can be remade on any machine (the
digits CNN is trained on first use, in a few seconds).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

import pellucid
from pellucid import inspect, plot, probe, zoo

OUT = Path(__file__).resolve().parent / "img"


def save(fig, name: str) -> None:
    fig.savefig(OUT / name, dpi=90, facecolor="white")
    print("wrote", OUT / name)


def probe_pictures() -> None:
    model, _ = zoo.digits_cnn()
    d = zoo.load_digits()
    x, y = d.x_test[:4], d.y_test[:4]
    save(probe.jsma(model, x, target_class=(y + 1) % 10, max_features=0.2, saliency="target",
                    variant="both").plot(), "probe-jsma.png")
    curve = probe.robustness_curve(model, d.x_test[:200], d.y_test[:200], attack="pgd",
                                   eps_values=[0, 0.05, 0.1, 0.15, 0.2, 0.3], steps=10, seed=0)
    save(curve.plot(), "probe-robustness.png")


def inspect_pictures() -> None:
    net = zoo.TinyResNet(seed=0)
    (OUT / "inspect-structure.svg").write_text(inspect.structure(net, torch.zeros(1, 3, 32, 32)).to_svg())
    print("wrote", OUT / "inspect-structure.svg")
    model, _ = zoo.digits_cnn()
    save(inspect.weights(model).plot(), "inspect-weights.png")
    d = zoo.load_digits()
    torch.manual_seed(0)  # this script's own training run
    student = zoo.DigitsCNN().train()
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    monitor = inspect.Monitor(student, d.x_test[:4], methods=("integrated_gradients",),
                              target=d.y_test[:4], steps=16)
    g = torch.Generator().manual_seed(0)
    step = 0
    for _ in range(4):
        for idx in torch.randperm(len(d.x_train), generator=g).split(64):
            if step % 10 == 0 and step <= 60:
                monitor.step(step)
            opt.zero_grad()
            F.cross_entropy(student(d.x_train[idx]), d.y_train[idx]).backward()
            opt.step()
            step += 1
    save(monitor.plot(), "inspect-monitor.png")


def plot_pictures() -> None:
    data = zoo.planted_tabular(200, seed=0)
    mlp, _ = zoo.planted_tabular_mlp()
    expl = pellucid.integrated_gradients(mlp, data.x[:1], steps=32)
    planted = set(data.informative.tolist())
    expl.feature_names = [f"feature {j}" + (" (planted)" if j in planted else "")
                          for j in range(data.x.shape[1])]
    save(plot.waterfall(expl, top=8), "plot-waterfall.png")


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    probe_pictures()
    inspect_pictures()
    plot_pictures()
