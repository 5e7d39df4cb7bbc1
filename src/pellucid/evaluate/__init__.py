"""Can the explanation be trusted? Faithfulness, robustness, complexity, randomisation and
localisation metrics, each returning a :class:`Score`."""
from ._score import Score

__all__ = ["Score"]
