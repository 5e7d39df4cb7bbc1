"""Tests for pellucid.simplify.surrogate_tree and rules: fidelity, and rules that reproduce the tree."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pellucid.errors import InputError
from pellucid.simplify import Rules, SurrogateTree, rules, surrogate_tree


def _by_hand(rule_dicts, x: np.ndarray, names: list[str]) -> np.ndarray:
    """Apply rules given as plain data, row by row, with nothing but comparisons."""
    column = {n: j for j, n in enumerate(names)}
    out = np.full(len(x), -1)
    for i, row in enumerate(x):
        hits = [r["prediction"] for r in rule_dicts
                if all((row[column[f]] <= t) if op == "<=" else (row[column[f]] > t)
                       for f, op, t in r["conditions"])]
        assert len(hits) == 1, f"row {i} satisfies {len(hits)} rules"
        out[i] = hits[0]
    return out


def test_depth4_tree_of_breast_cancer_mlp_and_its_rules(model_state, breast_cancer):
    b = breast_cancer
    before = model_state.snapshot(b.model)
    s = surrogate_tree(b.model, (b.x_train, b.y_train), max_depth=4, test=(b.x_test, b.y_test),
                       feature_names=b.feature_names, class_names=b.class_names)
    model_state.assert_same(before, model_state.snapshot(b.model))
    assert isinstance(s, SurrogateTree) and s.depth <= 4
    assert s.fidelity >= 0.90, s
    with torch.no_grad():
        model_pred = b.model(b.x_test).argmax(1).numpy()
    assert s.fidelity == pytest.approx(float((s.predict(b.x_test) == model_pred).mean()))

    r = rules(s)
    assert isinstance(r, Rules) and len(r) == s.leaves
    data = r.to_dicts()
    for x in (b.x_test.numpy(), b.x_train.numpy()):
        np.testing.assert_array_equal(_by_hand(data, x, b.feature_names), s.predict(x))
    np.testing.assert_array_equal(r.predict(b.x_test), s.predict(b.x_test))
    assert sum(rule.support for rule in r) == pytest.approx(1.0)
    # support and confidence by hand for the largest rule, on the training rows
    top = r[0]
    held = top.holds(b.x_train)
    with torch.no_grad():
        train_pred = b.model(b.x_train).argmax(1).numpy()
    assert top.support == pytest.approx(held.mean())
    assert top.confidence == pytest.approx((train_pred[held] == top.prediction).mean())
    text = str(r)
    assert text.count("IF ") == len(r) and "THEN" in text and "support" in text
    table = r.table()
    assert [row["rule"] for row in table] == list(range(1, len(r) + 1))
    assert any("worst" in row["if"] or "mean" in row["if"] for row in table)
    assert [row["support"] for row in table] == [rule.support for rule in r]
    assert s.table() == table  # a tree's table is its rules on the rows it was fit on
    assert len(r.plot().axes) == 1 and len(s.plot().axes) == 1
    assert "|---" in str(s)


def test_rules_measured_on_new_data_need_the_model(breast_cancer):
    b = breast_cancer
    s = surrogate_tree(b.model, b.x_train, max_depth=2)
    with pytest.raises(InputError, match="model="):
        rules(s, b.x_test)
    r = rules(s, b.x_test, model=b.model)
    assert sum(rule.rows for rule in r) == len(b.x_test)


def test_image_rows_are_flattened(digits):
    model, _, d = digits
    s = surrogate_tree(model, d.x_train, max_depth=3, test=d.x_test)
    assert len(s.feature_names) == 64 and s.depth <= 3 and 0 < s.fidelity <= 1
    assert rules(s).predict(d.x_test).shape == (len(d.x_test),)


def test_clear_errors():
    net = nn.Linear(3, 2)
    with pytest.raises(InputError, match="max_depth"):
        surrogate_tree(net, torch.rand(20, 3), max_depth=0)
    with pytest.raises(InputError, match="shape"):
        surrogate_tree(net, torch.rand(20, 4))
    with pytest.raises(InputError, match="feature_names"):
        surrogate_tree(net, torch.rand(20, 3), feature_names=["a"])
    with pytest.raises(InputError, match="surrogate_tree"):
        rules("not a tree")
