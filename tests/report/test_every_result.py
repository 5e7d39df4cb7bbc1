"""pellucid.report renders every result type the package returns, in one page.

One result of each kind is built on tiny models (a small CNN, a tabular MLP, a one-layer
attention model), all go into one report, and each must come out as a section holding a table or
a picture. The result classes are read from the packages' ``__all__``, so a new result type that
this file does not build fails :func:`test_every_result_class_is_built`.
"""
from __future__ import annotations

import html
import inspect
import re

import pytest
import torch
from torch import nn

import pellucid
from pellucid import evaluate, features, probe, simplify
from pellucid import inspect as pinspect

PACKAGES = (features, probe, evaluate, simplify, pinspect)

#: Classes in the packages' ``__all__`` that are parts of a result, not results of their own.
PARTS = {"LayerStats", "Objective", "Layer", "TensorStats", "Snapshot", "Rule"}


class _Attention(nn.Module):
    """Tokens (n, 5, 4) -> one multi-head self-attention layer -> 3 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        a, _ = self.attn(h, h, h)
        return self.head(a.mean(1))


def _models():
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 4)).eval()
    mlp = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    attn = _Attention().eval()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(4, 1, 8, 8, generator=g)
    x = torch.rand(24, 5, generator=g)
    y = mlp(x).argmax(1).detach()
    tokens = torch.randn(2, 5, 4, generator=g)
    return cnn, images, mlp, x, y, attn, tokens


CNN, IMAGES, MLP, X, Y, ATTN, TOKENS = _models()


def _explanation(values, inputs, kind):
    n = len(values)
    return pellucid.Explanation(values=values, inputs=inputs, target=torch.zeros(n, dtype=torch.long),
                                outputs=torch.zeros(n), kind=kind, method="hand-made")


def _text():
    e = _explanation(torch.randn(2, 6), torch.ones(2, 6, dtype=torch.long), "text")
    e.feature_names = ["a", "fine", "film", "##s", "!", "[PAD]"]
    return e


def _monitor():
    mon = pinspect.Monitor(MLP, X[:3], methods=("saliency",), every=1)
    mon.step(0)
    mon.step(1)
    return mon


def _tree():
    return simplify.surrogate_tree(MLP, X, max_depth=2, progress=False)


#: name -> how to build it. Calls use the keyword names of issue 13 (target, mode, rule,
#: train_batch_size, max_fraction, ...).
BUILD = {
    # attribution: an Explanation of every kind
    "Explanation (image)": lambda: pellucid.saliency(CNN, IMAGES),
    "Explanation (image, CAM)": lambda: pellucid.grad_cam(CNN, IMAGES, layer="2"),
    "Explanation (tabular, additive)": lambda: pellucid.integrated_gradients(
        MLP, X[:3], target=1, steps=8, rule="riemann_trapezoid"),
    "Explanation (tabular)": lambda: pellucid.gradient_x_input(MLP, X[:3]),
    "Explanation (text)": _text,
    "Explanation (sequence)": lambda: _explanation(torch.randn(2, 5, 4), TOKENS, "sequence"),
    # features
    "activations": lambda: features.activations(CNN, IMAGES, layers=["1"]),
    "ActivationStats": lambda: features.activation_stats(CNN, IMAGES, layers=["1"]),
    "Visualization": lambda: features.maximize(CNN, features.channel("2", 0),
                                               shape=(1, 8, 8), steps=3, seed=0, progress=False),
    "attention maps": lambda: features.attention(ATTN, TOKENS),
    "attention rollout": lambda: features.attention_rollout(features.attention(ATTN, TOKENS)),
    # probe
    "AttackResult": lambda: probe.fgsm(MLP, X[:4], eps=0.1),
    "AttackResult (jsma)": lambda: probe.jsma(CNN, IMAGES[:2], target=1, max_fraction=0.2),
    "RobustnessCurve": lambda: probe.robustness_curve(MLP, X, Y, eps_values=[0.0, 0.1]),
    "InterventionResult": lambda: probe.intervene(MLP, X[:4], do={0: 1.0}),
    "AblationResult": lambda: probe.ablate(MLP, X[:4], layer="1", units=[0, 1]),
    "PatchResult": lambda: probe.patch(MLP, X[:4], X[4:8], layer="1"),
    "NearestExamples": lambda: probe.nearest_examples(MLP, X[:3], X, layer="1", k=2),
    "Counterfactuals": lambda: probe.counterfactual(MLP, X[:2], target=0, steps=30, seed=0,
                                                    progress=False),
    # evaluate
    "Score": lambda: evaluate.deletion(CNN, pellucid.saliency(CNN, IMAGES), steps=4),
    "Score (randomisation)": lambda: evaluate.model_randomization(
        CNN, IMAGES, method="saliency", mode="cascade", seed=0),
    "Comparison": lambda: evaluate.compare(
        MLP, X[:6], methods=["saliency", "gradient_x_input"], metrics=["sparseness", "complexity"]),
    # simplify: (model, report) pairs, whole and the report half of each
    "Simplified": lambda: simplify.prune(MLP, amount=0.3),
    "PruneReport": lambda: simplify.prune(MLP, amount=0.3).report,
    "TrainReport": lambda: simplify.train(MLP, (X, Y), epochs=1, train_batch_size=8).report,
    "TrainReport (fine_tune)": lambda: simplify.fine_tune(MLP, (X, Y), epochs=1, train_batch_size=8).report,
    "QuantizeReport": lambda: simplify.quantize(MLP, dtype="float16", data=X).report,
    "DistillReport": lambda: simplify.distill(
        MLP, X, student=nn.Sequential(nn.Linear(5, 3)), epochs=1, train_batch_size=8).report,
    "SurrogateTree": _tree,
    "Rules": lambda: simplify.rules(_tree(), X, model=MLP),
    "Importance": lambda: simplify.global_importance(MLP, X, labels=Y, method="permutation",
                                                     repeats=1, rows=None),
    # inspect
    "Structure": lambda: pinspect.structure(CNN, IMAGES[:1]),
    "Weights": lambda: pinspect.weights(CNN),
    "Monitor": _monitor,
}

@pytest.fixture(scope="module")
def built():
    out = {}
    for name, build in BUILD.items():
        try:
            out[name] = build()
        except Exception as err:  # noqa: BLE001 - kept, and raised again by that case's own test
            out[name] = err
    return out


def _sections(doc: str) -> dict[str, str]:
    found = re.findall(r'<section id="[^"]*"><h2>(.*?)</h2>\n(.*?)\n</section>', doc, re.S)
    return {html.unescape(heading): body for heading, body in found}


@pytest.fixture(scope="module")
def page(built, tmp_path_factory):
    items = [(name, result) for name, result in built.items() if not isinstance(result, Exception)]
    path = pellucid.report(items, tmp_path_factory.mktemp("every") / "every.html", title="every result")
    return _sections(path.read_text(encoding="utf-8"))


def _shows_something(body: str) -> bool:
    return "<table" in body or "<img" in body or "<svg" in body


@pytest.mark.parametrize("name", list(BUILD))
def test_each_result_renders_with_a_table_or_a_picture(built, name, tmp_path):
    result = built[name]
    if isinstance(result, Exception):
        raise result
    path = pellucid.report([(name, result)], tmp_path / "one.html")
    body = _sections(path.read_text(encoding="utf-8"))[name]
    assert _shows_something(body), body[:500]


@pytest.mark.parametrize("name", list(BUILD))
def test_tables_are_rows_of_dicts_and_text_is_str(built, name):
    """``table()`` is always a list of dicts (what the report, pandas and a test read) and the
    text view is ``str()``; before, some results returned their text from ``table()``."""
    result = built[name]
    if isinstance(result, Exception):
        raise result
    table = getattr(result, "table", None)
    if callable(table):
        rows = table()
        assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows), type(rows)
        assert isinstance(str(result), str) and str(result)


def test_one_report_holds_them_all(built, page):
    ok = [name for name, result in built.items() if not isinstance(result, Exception)]
    assert list(page) == ok  # one section per result, in order, none dropped
    empty = [name for name, body in page.items() if not _shows_something(body)]
    assert not empty, f"sections without a table or a picture: {empty}"


def _result_classes():
    for package in PACKAGES:
        for name in package.__all__:
            obj = getattr(package, name)
            if inspect.isclass(obj) and name not in PARTS and not issubclass(obj, BaseException):
                yield name, obj


def test_every_result_class_is_built(built):
    made = {type(r) for r in built.values()}
    failed = {name.split(" (")[0] for name, r in built.items() if isinstance(r, Exception)}
    missing = [name for name, cls in _result_classes() if cls not in made and name not in failed]
    assert not missing, f"build one of each of these in BUILD (or list them as PARTS): {missing}"
    kinds = {r.kind for r in built.values() if isinstance(r, pellucid.Explanation)}
    assert kinds == {"image", "tabular", "text", "sequence"}
