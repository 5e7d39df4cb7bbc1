"""Relevance by a modified backward pass: LRP, DeepLIFT and guided backprop on one mechanism.

``lrp(model, x, composite=...)`` with rules (:mod:`.rules`), composites (:mod:`.composites`) and
canonizers (:mod:`.canonizers`); ``deeplift``; ``guided_backprop``. All three trace the model
(:mod:`.trace`) and run one modified forward and one backward pass per batch (:mod:`._backward`).
"""
from . import canonizers, composites, rules
from .composites import Composite
from .deeplift import deeplift
from .guided import guided_backprop
from .lrp import lrp, rule_map

__all__ = ["lrp", "deeplift", "guided_backprop", "rules", "composites", "canonizers", "Composite",
           "rule_map"]
