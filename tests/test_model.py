"""wrap(), target selection, chunked evaluation, progress, the registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pellucid
from pellucid._common import progress_enabled
from pellucid.errors import ModelError
from pellucid.model import default_batch_size, select_target


def test_wrap_module_and_callable():
    net = nn.Linear(3, 2).double()
    m = pellucid.wrap(net)
    assert m.module is net and m.dtype == torch.float64 and m.device.type == "cpu"
    assert pellucid.wrap(m) is m
    assert pellucid.wrap(m, batch_size=4).batch_size == 4
    f = pellucid.wrap(lambda x: x.sum(1))
    assert f.module is None and f.differentiable
    assert pellucid.wrap(net.forward).module is net
    with pytest.raises(ModelError, match="cannot explain an object of type int"):
        pellucid.wrap(3)


def test_inputs_from_numpy_and_pandas_like():
    class Frame:
        def to_numpy(self):
            return np.ones((2, 3))

    net = nn.Linear(3, 2)
    a = pellucid.saliency(net, Frame(), target=0)
    b = pellucid.saliency(net, np.ones((2, 3)), target=0)
    torch.testing.assert_close(a.values, b.values)


def test_select_target():
    out = torch.tensor([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0]])
    assert select_target(out, None).tolist() == [1, 0]
    assert select_target(out, 2).tolist() == [2, 2]
    assert select_target(out, np.int64(1)).tolist() == [1, 1]
    assert select_target(out, torch.tensor(0)).tolist() == [0, 0]
    assert select_target(out, np.array([2, 1])).tolist() == [2, 1]
    assert select_target(torch.ones(2, 1), None).tolist() == [0, 0]


def test_one_dimensional_outputs_are_one_column():
    e = pellucid.saliency(lambda x: x.sum(1), torch.ones(3, 2))
    assert e.outputs.tolist() == [2.0, 2.0, 2.0] and e.target.tolist() == [0, 0, 0]


def test_default_batch_size():
    assert default_batch_size((1, 8, 8)) == 512
    assert default_batch_size((3, 32, 32)) == 85
    assert default_batch_size((3, 224, 224)) == 8


def test_chunks_are_equal_and_bounded():
    m = pellucid.wrap(nn.Linear(2, 1))
    sizes = [s.stop - s.start for s, _ in m.chunks(800, (1,), batch_size=512, progress=False, desc="")]
    assert sizes == [400, 400]
    sizes = [s.stop - s.start for s, _ in m.chunks(10, (1,), batch_size=3, progress=False, desc="")]
    assert sizes == [3, 3, 3, 1]


def test_chunks_carry_their_rows_targets():
    m = pellucid.wrap(nn.Linear(2, 3))
    per_row = [0, 1, 2, 0, 1]
    got = list(m.chunks(5, (2,), target=per_row, batch_size=2, progress=False, desc=""))
    assert [t.tolist() for _, t in got] == [[0, 1], [2, 0], [1]]
    assert [t for _, t in m.chunks(3, (2,), target=2, batch_size=2, progress=False, desc="")] == [2, 2]
    assert [t for _, t in m.chunks(3, (2,), batch_size=2, progress=False, desc="")] == [None, None]


def test_progress_switch(monkeypatch):
    monkeypatch.setenv("PELLUCID_PROGRESS", "0")
    assert not progress_enabled(None) and progress_enabled(True)
    monkeypatch.setenv("PELLUCID_PROGRESS", "1")
    assert progress_enabled(None) and not progress_enabled(False)


def test_progress_bar_on_long_runs(cnn, images, capsys, monkeypatch):
    import tqdm.auto

    made = []
    real = tqdm.auto.tqdm

    def spy(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **{**kwargs, "delay": 0})

    monkeypatch.setattr(tqdm.auto, "tqdm", spy)
    pellucid.integrated_gradients(cnn, images, steps=10, batch_size=5, progress=True)
    assert made and made[0]["desc"] == "integrated_gradients"
    made.clear()
    pellucid.integrated_gradients(cnn, images, steps=10, batch_size=5, progress=False)
    assert not made


def test_registry_lists_and_dispatches(cnn, images):
    names = pellucid.methods()
    for name in ["saliency", "gradient_x_input", "integrated_gradients", "smoothgrad",
                 "grad_cam", "grad_cam_pp"]:
        assert name in names
    info = {i.name: i for i in pellucid.methods(details=True)}
    assert info["grad_cam"].layer and info["smoothgrad"].random
    assert info["integrated_gradients"].additive and info["saliency"].gradients
    assert info["saliency"].summary.startswith("Saliency")
    assert info["conductance"].layer  # an attribution method, registered with the others
    a = pellucid.explain(cnn, images, method="integrated_gradients", steps=5)
    b = pellucid.integrated_gradients(cnn, images, steps=5)
    torch.testing.assert_close(a.values, b.values)
    # IG's quadrature is rule=; its old name method= still reaches it for one release (warned),
    # also through explain() when the method's name is given positionally.
    c = pellucid.explain(cnn, images, "integrated_gradients", steps=5, rule="riemann_left")
    with pytest.warns(DeprecationWarning, match="rule="):
        d = pellucid.explain(cnn, images, "integrated_gradients", steps=5, method="riemann_left")
    with pytest.warns(DeprecationWarning, match="rule="):
        e = pellucid.integrated_gradients(cnn, images, steps=5, method="riemann_left")
    assert c.params["rule"] == d.params["rule"] == e.params["rule"] == "riemann_left"
    assert c.method == "integrated_gradients" and "seconds" in c.meta
    torch.testing.assert_close(c.values, d.values)
    torch.testing.assert_close(c.values, e.values)
    assert not torch.allclose(c.values, a.values)  # a different rule, different values
    with pytest.raises(TypeError, match="needs a method name"):
        pellucid.explain(cnn, images)


def test_explaining_a_model_in_training_mode_uses_eval_mode(cnn, images):
    """Dropout is active in training mode: explanations must not be random because of it."""
    cnn.train()
    a = pellucid.saliency(cnn, images).values
    b = pellucid.saliency(cnn, images).values
    assert torch.equal(a, b) and cnn.training


def test_python_dash_m_runs_the_command():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pellucid", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and pellucid.__version__ in done.stdout


def test_forward_only_work_uses_larger_chunks_for_small_rows():
    from pellucid.model import default_batch_size, default_forward_rows

    assert default_forward_rows((20,)) == (1 << 17) // 20  # a tabular row: 6553 rows per pass
    assert default_forward_rows((1,)) == 16384  # capped
    assert default_forward_rows((3, 32, 32)) == default_batch_size((3, 32, 32)) == 85  # images: as before
    m = pellucid.wrap(torch.nn.Linear(20, 2))
    assert m.batch_rows((20,), forward_only=True) == 6553 and m.batch_rows((20,)) == 512
    assert m.batch_rows((20,), forward_only=True, batch_size=7) == 7  # an explicit batch size wins


def test_outputs_as_models_return_them():
    """Hugging Face outputs, dicts and tuples are read at their logits; anything ambiguous or
    complex is refused with a message that says what to do."""
    from pellucid.model import outputs_2d

    logits = torch.arange(6.0).view(3, 2)
    hf = type("Out", (dict,), {"logits": property(lambda self: self["logits"])})(logits=logits, hidden=1)
    for out in (hf, {"logits": logits, "hidden": torch.zeros(3, 4)}, {"scores": logits},
                (logits, torch.zeros(3)), [logits]):
        assert outputs_2d(out, 3) is logits
    with pytest.raises(ModelError, match="keys \\['a', 'b'\\].*logits"):
        outputs_2d({"a": logits, "b": logits}, 3)
    with pytest.raises(ModelError, match="complex"):
        outputs_2d(logits.to(torch.complex64), 3)
    class DictOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> dict:
            return {"logits": self.net(x), "aux": self.net(x).sum(1)}

    model = DictOut()
    e = pellucid.saliency(model, torch.rand(3, 2))
    torch.testing.assert_close(e.values, pellucid.saliency(model.net, e.inputs).values)
