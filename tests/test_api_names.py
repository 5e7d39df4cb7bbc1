"""The public API against docs/naming.md: every keyword is in the glossary, no renamed keyword is
left in a signature (and each still works, warned), and every signature keeps the one order."""
from __future__ import annotations

import importlib
import inspect
import re
import warnings
from pathlib import Path

import pytest

NAMING = Path(__file__).resolve().parents[1] / "docs" / "naming.md"
PACKAGES = ["pellucid", "pellucid.attribution", "pellucid.attribution.relevance", "pellucid.features",
            "pellucid.probe", "pellucid.evaluate", "pellucid.simplify", "pellucid.inspect", "pellucid.plot",
            "pellucid.zoo", "pellucid.reporting"]
#: Keywords that are data and may come before ``target``.
DATA_KEYWORDS = {"labels"}
TAIL = ("seed", "batch_size", "progress")


def _section(title: str) -> list[list[str]]:
    """The rows of the first table under heading ``title`` as lists of cells."""
    text = NAMING.read_text()
    part = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in part.splitlines() if line.startswith("|")][2:]  # past header and rule
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def _public_callables() -> dict[str, object]:
    """``{"package.name": function}`` for every public function and every public method of a
    public class (each object once, under its first name)."""
    found: dict[str, object] = {}
    seen: set[int] = set()
    for package in PACKAGES:
        module = importlib.import_module(package)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            candidates = []
            if inspect.isfunction(obj):
                candidates.append((attr, obj))
            elif inspect.isclass(obj):
                candidates += [(f"{attr}.{k}", v) for k, v in vars(obj).items()
                               if inspect.isfunction(v) and not k.startswith("_")]
            for label, fn in candidates:
                if id(fn) not in seen:
                    seen.add(id(fn))
                    found[f"{package}.{label}"] = fn
    return found


CALLABLES = _public_callables()


def _parameters(fn) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values()
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL,)]


def test_the_walk_sees_the_api():
    assert len(CALLABLES) > 150
    assert "pellucid.integrated_gradients" in CALLABLES and "pellucid.probe.jsma" in CALLABLES


def test_every_keyword_is_in_the_glossary_and_every_entry_is_used():
    glossary = {name for cells in _section("Glossary of keyword names")
                for name in re.findall(r"`(\w+)`", cells[0])}
    used: dict[str, list[str]] = {}
    for label, fn in CALLABLES.items():
        for p in _parameters(fn):
            used.setdefault(p.name, []).append(label)
    missing = {name: where[:3] for name, where in used.items() if name not in glossary}
    assert not missing, f"keywords missing from docs/naming.md's glossary: {missing}"
    stale = sorted(glossary - set(used))
    assert not stale, f"glossary entries no public function uses any more: {stale}"


RENAMED = _section("Renamed in this release")


@pytest.mark.parametrize("function, old, new", [tuple(c.strip("`") for c in row) for row in RENAMED])
def test_renamed_keywords_are_gone_from_signatures_and_still_accepted(function, old, new):
    module_path, _, name = f"pellucid.{function}".rpartition(".")
    fn = getattr(importlib.import_module(module_path), name)
    target = fn.__init__ if inspect.isclass(fn) else fn
    names = {p.name for p in _parameters(target)}
    assert new in names and old not in names, (function, sorted(names))
    # The old name is accepted for one release: the deprecation layer maps it to the new one.
    renamed = getattr(target, "__renamed__", {})
    if old in renamed:
        assert renamed[old] == new
    else:  # a hand-written deprecation (e.g. layers= of model_randomization took the mode's value)
        assert old in inspect.getsource(target), f"{function} no longer mentions its old name {old!r}"


def test_old_names_warn_and_give_the_same_result():
    import torch

    import pellucid
    from pellucid import probe

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.rand(5, 4, generator=torch.Generator().manual_seed(0))
    new = pellucid.integrated_gradients(net, x, rule="riemann_middle", steps=8)
    with pytest.warns(DeprecationWarning, match="rule="):
        old = pellucid.integrated_gradients(net, x, method="riemann_middle", steps=8)
    torch.testing.assert_close(new.values, old.values)
    new = probe.jsma(net, x, target=2, max_fraction=0.5)
    with pytest.warns(DeprecationWarning):
        old = probe.jsma(net, x, target_class=2, max_features=0.5)
    torch.testing.assert_close(new.adversarial, old.adversarial)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names never warn
        pellucid.integrated_gradients(net, x, rule="riemann_middle", steps=8)


@pytest.mark.parametrize("label", sorted(CALLABLES))
def test_one_keyword_order(label):
    """Data first, then ``target`` (after ``labels``), then the options, and ``seed``,
    ``batch_size``, ``progress`` last in that order."""
    names = [p.name for p in _parameters(CALLABLES[label]) if p.kind is not p.VAR_KEYWORD]
    keyword_only = [p.name for p in _parameters(CALLABLES[label]) if p.kind is p.KEYWORD_ONLY]
    if "target" in keyword_only:
        before = keyword_only[: keyword_only.index("target")]
        assert set(before) <= DATA_KEYWORDS, f"{label}: {before} come before target"
    tail = [n for n in names if n in TAIL]
    assert tail == [t for t in TAIL if t in tail], f"{label}: {tail} out of order"
    assert names[len(names) - len(tail):] == tail, f"{label}: {names} do not end with {tail}"
