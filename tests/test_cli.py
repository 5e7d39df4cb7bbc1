"""The `pellucid explain` and `pellucid inspect` commands, end to end on ONNX, TorchScript,
torch.export programs (.pt2), CSV, images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import pellucid
from pellucid.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()
    x = torch.rand(6, 5)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(mlp, (x[:1],), str(d / "mlp.onnx"), input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, dynamo=False)
        torch.jit.save(torch.jit.trace(mlp, x[:1]), str(d / "mlp.pt"))
    program = torch.export.export(mlp, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(d / "mlp.pt2"))
    (d / "junk.pt2").write_text("not a program")
    np.savetxt(d / "rows.csv", x.numpy(), delimiter=",", header="age,income,height,weight,score",
               comments="")
    np.save(d / "rows.npy", x.numpy())
    return d, mlp, x


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_onnx_on_csv_matches_the_torch_module(files, capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    d, mlp, x = files
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "explain", "--model", str(d / "mlp.onnx"), "--data", str(d / "rows.csv"),
                             "--method", "exact_shapley", "--target", "2", "--out", str(out))
    assert code == 0, err
    assert "explained 6 row(s) with exact_shapley" in stdout
    assert "using the 6 data rows" in err  # the background defaulted to the data, and said so
    expl = pellucid.Explanation.load(out / "explanation.npz")
    assert expl.feature_names == ["age", "income", "height", "weight", "score"]
    reference = pellucid.exact_shapley(mlp, x, background=x, target=2)
    torch.testing.assert_close(expl.values.double(), reference.values.double(), atol=1e-4, rtol=0)
    page = (out / "report.html").read_text()
    assert "income" in page and page.count("<img") >= 6


def test_explain_torchscript_on_npy_with_params(files, capsys, tmp_path):
    d, mlp, x = files
    code, stdout, err = _run(capsys, "explain", "--model", str(d / "mlp.pt"), "--data", str(d / "rows.npy"),
                             "--method", "integrated_gradients", "--param", "steps=16",
                             "--param", "baseline=0.5", "--target", "0,1,2,0,1,2", "--out", str(tmp_path))
    assert code == 0, err
    expl = pellucid.Explanation.load(tmp_path / "explanation.npz")
    reference = pellucid.integrated_gradients(mlp, x, target=torch.tensor([0, 1, 2, 0, 1, 2]),
                                              steps=16, baseline=0.5)
    torch.testing.assert_close(expl.values, reference.values, atol=1e-6, rtol=1e-5)
    assert expl.params["steps"] == 16 and expl.target.tolist() == [0, 1, 2, 0, 1, 2]


def test_explain_an_exported_program(files, capsys, tmp_path):
    d, mlp, x = files
    code, stdout, err = _run(capsys, "explain", "--model", str(d / "mlp.pt2"), "--data", str(d / "rows.csv"),
                             "--method", "integrated_gradients", "--param", "steps=16", "--target", "2",
                             "--out", str(tmp_path / "ig"))
    assert code == 0, err
    assert "explained 6 row(s) with integrated_gradients" in stdout
    expl = pellucid.Explanation.load(tmp_path / "ig" / "explanation.npz")
    reference = pellucid.integrated_gradients(mlp, x, target=2, steps=16)
    torch.testing.assert_close(expl.values, reference.values, atol=1e-6, rtol=0)
    assert expl.feature_names == ["age", "income", "height", "weight", "score"]
    assert "income" in (tmp_path / "ig" / "report.html").read_text()
    code, _, err = _run(capsys, "explain", "--model", str(d / "mlp.pt2"), "--data", str(d / "rows.npy"),
                        "--method", "kernel_shap", "--param", "seed=0", "--target", "1",
                        "--out", str(tmp_path / "ks"))
    assert code == 0, err
    expl = pellucid.Explanation.load(tmp_path / "ks" / "explanation.npz")
    reference = pellucid.kernel_shap(mlp, x, background=x, target=1, seed=0)
    torch.testing.assert_close(expl.values, reference.values, atol=1e-6, rtol=0)


def test_explain_passes_method_options_by_their_new_names(files, capsys, tmp_path):
    d, mlp, x = files
    argv = ["explain", "--model", str(d / "mlp.pt"), "--data", str(d / "rows.npy"),
            "--method", "integrated_gradients", "--param", "steps=8", "--target", "1"]
    code, _, err = _run(capsys, *argv, "--param", "rule='riemann_left'", "--out", str(tmp_path / "new"))
    assert code == 0, err
    new = pellucid.Explanation.load(tmp_path / "new" / "explanation.npz")
    reference = pellucid.integrated_gradients(mlp, x, target=1, steps=8, rule="riemann_left")
    assert new.params["rule"] == "riemann_left"
    torch.testing.assert_close(new.values, reference.values, atol=1e-6, rtol=1e-5)
    # IG's old name of the option, method=, still reaches IG (not explain's method) and warns
    with pytest.warns(DeprecationWarning, match="rule="):
        code, _, err = _run(capsys, *argv, "--param", "method=riemann_left", "--out", str(tmp_path / "old"))
    assert code == 0, err
    old = pellucid.Explanation.load(tmp_path / "old" / "explanation.npz")
    torch.testing.assert_close(old.values, new.values)


def test_explain_a_folder_of_images(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8), mode="L").save(folder / f"{i}.png")
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(72, 4)).eval()
    torch.jit.save(torch.jit.trace(cnn, torch.zeros(1, 1, 8, 8)), str(tmp_path / "cnn.pt"))
    code, _, err = _run(capsys, "explain", "--model", str(tmp_path / "cnn.pt"), "--data", str(folder),
                        "--method", "saliency", "--out", str(tmp_path / "o"))
    assert code == 0, err
    expl = pellucid.Explanation.load(tmp_path / "o" / "explanation.npz")
    assert expl.values.shape == (3, 1, 8, 8) and expl.kind == "image"
    first = torch.from_numpy(np.asarray(Image.open(folder / "0.png"), dtype=np.float32) / 255)
    torch.testing.assert_close(expl.inputs[0, 0], first)


@pytest.mark.parametrize(
    "argv, message",
    [
        ("missing.onnx {d}/rows.csv occlusion", "model file not found"),
        ("{d}/mlp.pt {d}/missing.csv saliency", "data file not found"),
        ("{d}/mlp.pt {d}/rows.csv nope", "no explanation method named 'nope'"),
        ("{d}/mlp.onnx {d}/rows.csv saliency", "black-box"),
        ("{d}/mlp.pt {d}/rows.csv saliency --param oops", "KEY=VALUE"),
        ("{d}/mlp.pt {d}/rows.csv saliency --target 7", "out of range"),
        ("{d}/mlp.pt {d}/mlp.onnx saliency", "unknown data format"),
        ("no_such_module:f {d}/rows.csv saliency", "cannot import"),
        ("{d}/mlp.pt {d}/rows.csv saliency --param target=1", "give --target as its own option"),
        ("{d}/mlp.pt {d}/rows.csv saliency --batch-size 0", "--batch-size must be a positive integer"),
        ("{d}/junk.pt2 {d}/rows.csv saliency", "not a program saved with torch.export.save"),
        ("missing.pt2 {d}/rows.csv saliency", "model file not found"),
    ],
)
def test_explain_bad_arguments_exit_non_zero_with_one_line(files, capsys, tmp_path, argv, message):
    d, _, _ = files
    model, data, method, *rest = argv.format(d=d).split()  # "MODEL DATA METHOD [OPTIONS]"
    argv = ["--model", model, "--data", data, "--method", method, *rest]
    code, _, err = _run(capsys, "explain", *argv, "--out", str(tmp_path / "o"))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pellucid explain: error: ") and message in lines[0], err


def test_inspect_module_function_torchscript_and_pt2(files, capsys, tmp_path):
    d, _, _ = files
    code, stdout, err = _run(capsys, "inspect", "--model", "pellucid.zoo:TinyResNet",
                             "--input-shape", "1,3,32,32", "--out", str(tmp_path))
    assert code == 0, err
    assert "total parameters 19,994" in stdout and "block2.conv1" in stdout
    assert (tmp_path / "report.html").read_text().count("<svg") >= 1
    code, stdout, err = _run(capsys, "inspect", "--model", str(d / "mlp.pt"), "--input-shape", "2,5")
    assert code == 0, err
    assert "total parameters 75" in stdout
    code, stdout, err = _run(capsys, "inspect", "--model", str(d / "mlp.pt2"), "--input-shape", "2,5")
    assert code == 0, err
    assert "total parameters 75" in stdout and "2x8" in stdout  # one row per layer of the original
    code, _, err = _run(capsys, "inspect", "--model", str(d / "mlp.onnx"), "--input-shape", "2,5")
    assert code == 1 and "needs a torch model" in err
    code, _, err = _run(capsys, "inspect", "--model", str(d / "mlp.pt"), "--input-shape", "2,x")
    assert code == 1 and "--input-shape" in err


@pytest.mark.parametrize("command", [[], ["demo"], ["methods"], ["explain"], ["inspect"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(command + ["--help"])
    assert exit_.value.code == 0
    assert "usage: pellucid" in capsys.readouterr().out


def test_missing_required_arguments_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["explain", "--model", "m.onnx"])
    assert exit_.value.code == 2
