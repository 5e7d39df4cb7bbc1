"""Explanation: row slicing, delta, save/load."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pellucid
from pellucid import Explanation
from pellucid.errors import FormatError, PellucidError


@pytest.fixture
def expl(cnn, images):
    return pellucid.integrated_gradients(cnn, images, steps=8, baseline=torch.full((1, 8, 8), 0.1))


def test_row_slicing_keeps_the_batch_dimension(expl):
    one = expl[3]
    assert len(one) == 1 and one.values.shape == (1, 1, 8, 8)
    torch.testing.assert_close(one.values[0], expl.values[3])
    assert one.target.tolist() == [expl.target[3].item()]
    torch.testing.assert_close(one.baseline_outputs, expl.baseline_outputs[3:4])
    assert len(expl[:4]) == 4 and len(expl[-1]) == 1
    torch.testing.assert_close(expl[torch.tensor([0, 5])].outputs, expl.outputs[[0, 5]])
    with pytest.raises(IndexError):
        expl[6]


def test_delta_by_hand(expl):
    by_hand = expl.values.sum(dim=(1, 2, 3)) - (expl.outputs - expl.baseline_outputs)
    torch.testing.assert_close(expl.delta, by_hand)


def test_non_additive_has_no_delta(cnn, images):
    with pytest.raises(PellucidError, match="saliency is not additive"):
        pellucid.saliency(cnn, images).delta


def test_save_and_load_round_trip(expl, tmp_path):
    expl.feature_names = None
    path = expl.save(tmp_path / "ig")
    assert path.suffix == ".npz"
    back = Explanation.load(path)
    for name in ("values", "inputs", "target", "outputs", "baseline_outputs"):
        assert torch.equal(getattr(back, name), getattr(expl, name)), name
    assert back.method == "integrated_gradients" and back.kind == "image"
    assert back.params["steps"] == 8 and back.params["rule"] == "gausslegendre"
    assert torch.equal(back.params["baseline"], expl.params["baseline"])
    assert back.meta["forward_rows"] == expl.meta["forward_rows"]


def test_saved_file_holds_no_pickle_and_a_format_version(expl, tmp_path):
    path = expl.save(tmp_path / "e.npz")
    with np.load(path, allow_pickle=False) as data:  # would raise on any pickled object
        header = json.loads(str(data["__header__"]))
    assert header["format_version"] == 1 and header["format"] == "pellucid.Explanation"


def test_load_rejects_foreign_and_future_files(expl, tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(FormatError, match="no pellucid header"):
        Explanation.load(tmp_path / "other.npz")
    path = expl.save(tmp_path / "e.npz")
    with np.load(path) as data:
        arrays = dict(data)
    header = json.loads(str(arrays["__header__"]))
    header["format_version"] = 99
    arrays["__header__"] = np.array(json.dumps(header))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(FormatError, match="newer than this pellucid reads"):
        Explanation.load(tmp_path / "future.npz")


def test_to_numpy_and_kinds(expl):
    assert isinstance(expl.numpy(), np.ndarray) and expl.numpy().shape == (6, 1, 8, 8)
    tab = pellucid.saliency(torch.nn.Linear(3, 2), torch.ones(2, 3))
    assert tab.kind == "tabular"


def test_per_row_tensors_are_sliced_moved_and_saved(tmp_path):
    """Per-row figures (Shapley standard errors, LIME's fit) follow the rows they belong to."""
    import numpy as np

    net = torch.nn.Linear(4, 2)
    x = torch.rand(5, 4)
    e = pellucid.kernel_shap(net, x, background=torch.zeros(1, 4), samples=64, seed=0)
    se = e.per_row["standard_errors"]
    assert se.shape == (5, 4)
    assert torch.equal(e[2].per_row["standard_errors"], se[2:3])
    assert torch.equal(e[1:4].per_row["group_values"], e.per_row["group_values"][1:4])
    back = pellucid.Explanation.load(e.save(tmp_path / "e.npz"))
    assert torch.equal(back.per_row["standard_errors"], se)
    assert torch.equal(e.to("cpu").per_row["standard_errors"], se)
    with pytest.raises(pellucid.errors.PellucidError, match="one entry per row"):
        pellucid.Explanation(values=x, inputs=x, target=torch.zeros(5, dtype=torch.long),
                             outputs=torch.zeros(5), per_row={"bad": torch.zeros(3)})
    lime = pellucid.lime(net, x, background=np.zeros((1, 4)), groups=[[0, 1], [2, 3]], seed=0)
    assert lime[4].per_row["r2"].shape == (1,) and lime[4].per_row["intercept"].shape == (1,)
