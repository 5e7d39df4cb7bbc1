"""Score: the mean skips NaN rows, table() is one dict per row, str() is that table as text."""
from __future__ import annotations

import math

import torch

from pellucid.evaluate import Score


def test_table_rows_carry_the_per_row_meta():
    s = Score("completeness", torch.tensor([0.5, float("nan"), 0.25]), higher_is_better=False,
              meta={"passed": torch.tensor([True, False, True]), "rtol": 0.01, "fractions": [0, 1, 2]})
    assert s.mean == 0.375
    rows = s.table()
    assert rows[0] == {"row": 0, "completeness": 0.5, "passed": True}
    assert math.isnan(rows[1]["completeness"]) and rows[2]["passed"] is True
    lines = str(s).splitlines()
    assert lines[0] == repr(s) == "Score(completeness↓, mean=0.375, rows=3)"
    assert lines[1].split() == ["row", "completeness", "passed"]
    assert lines[4].split() == ["1", "-", "False"] and len(lines) == 6


def test_long_scores_print_their_first_rows():
    s = Score("sparseness", torch.arange(25.0), higher_is_better=True)
    lines = str(s).splitlines()
    assert len(lines) == 1 + 2 + 20 + 1 and lines[-1] == "... 5 more rows"
    assert len(s.table()) == 25
