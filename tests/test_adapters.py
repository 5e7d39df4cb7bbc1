"""Black-box adapters in wrap(): numpy callables, scikit-learn, ONNX files, TorchScript files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pellucid
from pellucid.adapters import numpy_model
from pellucid.errors import ModelError, NotDifferentiableError


def _mlp(d: int = 6, out: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, out))


def _rows(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_numpy_callable_is_a_black_box():
    w = np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]])
    f = lambda a: np.tanh(a.astype(np.float64)) @ w  # noqa: E731 - numpy only (.astype)
    m = pellucid.wrap(f)
    x = _rows(4, 3)
    out = m.outputs(x)
    np.testing.assert_allclose(out.numpy(), np.tanh(x.numpy()) @ w, rtol=1e-6)
    assert not m.differentiable and "black-box" in repr(m)
    expl = pellucid.exact_shapley(f, x, background=_rows(5, 3, 1), target=1)
    assert expl.delta.abs().max() < 1e-5


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "smoothgrad"])
def test_gradient_methods_on_a_black_box_name_what_works(method):
    f = lambda a: np.asarray(a).sum(1)  # noqa: E731
    for model in (f, numpy_model(f)):
        with pytest.raises(NotDifferentiableError, match="kernel_shap, exact_shapley, permutation_shapley"):
            getattr(pellucid, method)(model, _rows(2, 3))


def test_torch_callables_stay_differentiable():
    net = _mlp()
    m = pellucid.wrap(lambda t: net(t) * 2)
    x = _rows(3, 6)
    torch.testing.assert_close(m.outputs(x), net(x).detach() * 2)
    assert m.differentiable
    assert pellucid.saliency(lambda t: net(t) * 2, x).values.shape == x.shape


def test_numpy_model_explicit_and_output_shapes():
    m = numpy_model(lambda a: a[:, 0] * 2.0, batch_size=2)
    out = m.outputs(_rows(5, 2))
    assert out.shape == (5, 1) and out.dtype == torch.float64 and m.batch_size == 2


# -- scikit-learn -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cancer_mlp():
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=1000,
                                                        random_state=0)).fit(x, y)
    return clf, x


def test_sklearn_mlp_on_breast_cancer_end_to_end(cancer_mlp):
    """predict_proba is explained (class 1), all 30 features get values, efficiency holds."""
    clf, data = cancer_mlp
    m = pellucid.wrap(clf)
    assert not m.differentiable and m.dtype == torch.float64
    x, bg = data[:2], data[100:200]
    np.testing.assert_allclose(m.outputs(torch.as_tensor(x)).numpy(), clf.predict_proba(x))
    expl = pellucid.kernel_shap(clf, x, background=bg, target=1, seed=0, max_background=10,
                                samples=600)
    assert expl.values.shape == (2, 30) and expl.meta["background_rows"] == 10
    assert expl.delta.abs().max() < 1e-5
    torch.testing.assert_close(expl.outputs, torch.as_tensor(clf.predict_proba(x)[:, 1]))
    perm = pellucid.permutation_shapley(clf, x, background=bg, target=1, seed=0,
                                        max_background=10, permutations=10)
    # two estimators of the same values: they agree on the most important feature of each row
    top_k, top_p = expl.values.abs().argmax(1), perm.values.abs().argmax(1)
    assert (top_k == top_p).all()
    lim = pellucid.lime(clf, x, background=bg, target=1, seed=0, samples=500)
    assert lim.values.shape == (2, 30) and (lim.per_row["r2"] > 0).all()


def test_sklearn_regressor_uses_predict():
    from sklearn.linear_model import LinearRegression

    g = np.random.default_rng(0)
    x = g.normal(size=(50, 4))
    reg = LinearRegression().fit(x, x @ np.array([1.0, -2.0, 0.0, 3.0]) + 1)
    expl = pellucid.exact_shapley(reg, x[:2], background=x)
    true = reg.coef_ * (x[:2] - x.mean(0))
    np.testing.assert_allclose(expl.values.numpy(), true, atol=1e-9)


# -- ONNX and TorchScript files -------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    net = _mlp(8, 3).eval()
    path = tmp_path_factory.mktemp("onnx") / "mlp.onnx"
    torch.onnx.export(net, (torch.zeros(1, 8),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return net, path


@pytest.mark.parametrize("method", ["exact_shapley", "kernel_shap", "permutation_shapley"])
def test_onnx_matches_torch_module(onnx_file, method):
    net, path = onnx_file
    x, bg = _rows(4, 8), _rows(10, 8, 1)
    kw = {"seed": 0} if method != "exact_shapley" else {}
    ours = getattr(pellucid, method)(str(path), x, background=bg, target=2, **kw)
    ref = getattr(pellucid, method)(net, x, background=bg, target=2, **kw)
    torch.testing.assert_close(ours.values, ref.values, atol=1e-4, rtol=0)
    assert not pellucid.wrap(path).differentiable


def test_onnx_session_and_proto_and_errors(onnx_file, tmp_path):
    import onnx
    import onnxruntime as ort

    net, path = onnx_file
    x = _rows(700, 8)  # more rows than one chunk, so batching through ort is exercised
    for source in (path, onnx.load(str(path)), ort.InferenceSession(str(path))):
        out = pellucid.wrap(source, batch_size=256).outputs(x)
        torch.testing.assert_close(out, net(x).detach(), atol=1e-5, rtol=0)
    with pytest.raises(ModelError, match="no ONNX file"):
        pellucid.wrap(tmp_path / "missing.onnx")
    with pytest.raises(ModelError, match="cannot tell what kind of model"):
        pellucid.wrap(tmp_path / "model.bin")
    with pytest.raises(NotDifferentiableError, match="exact_shapley"):
        pellucid.saliency(path, x[:2])


def test_torchscript_file_is_a_differentiable_module(tmp_path):
    net = _mlp().eval()
    path = tmp_path / "mlp.pt"
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 6)), str(path))
    m = pellucid.wrap(path)
    assert m.differentiable
    x = _rows(3, 6)
    torch.testing.assert_close(pellucid.saliency(path, x, target=1).values,
                               pellucid.saliency(net, x, target=1).values)
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ModelError, match="torch.jit.save"):
        pellucid.wrap(tmp_path / "weights.pt")


def test_torchscript_load_leaks_no_deprecation_warning(tmp_path, recwarn):
    """torch 2.13 deprecates torch.jit.load; pellucid silences exactly that warning around its own
    load, and nothing else (a warning of the caller's still comes through)."""
    import warnings

    net = _mlp().eval()
    path = tmp_path / "mlp.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace / save warn too: the test's own calls
        torch.jit.save(torch.jit.trace(net, torch.zeros(1, 6)), str(path))
    with pytest.warns(DeprecationWarning, match="torch.jit.load"):  # torch does warn ...
        torch.jit.load(str(path))
    recwarn.clear()
    x = _rows(3, 6)
    values = pellucid.saliency(path, x, target=1).values  # ... pellucid's load does not
    torch.testing.assert_close(values, pellucid.saliency(net, x, target=1).values)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)], [str(w.message) for w in recwarn]
    pellucid.wrap(path)
    warnings.warn("the caller's own", DeprecationWarning)
    assert [str(w.message) for w in recwarn] == ["the caller's own"]
