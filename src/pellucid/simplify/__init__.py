"""Can a simpler model say the same? Pruning, quantization, distillation, surrogates, importance.

Every function leaves the user's model exactly as found: pruning, quantization, distillation and
training work on copies and return ``Simplified(model, report)`` (a named tuple: ``pruned, report
= prune(...)`` still works), the report stating the cost in accuracy.

- :func:`prune` / :func:`fine_tune`: remove weights or whole units, then recover accuracy.
- :func:`quantize`: int8 weights through ``torch.ao.quantization``.
- :func:`distill`: a small student trained on the model's softened outputs.
- :func:`surrogate_tree` / :func:`rules`: a decision tree fit to the model, and its IF–THEN rules.
- :func:`global_importance`: permutation, gradient, Shapley or tree-based feature importance.
- :func:`sparsity_penalty` / :func:`train`: L1/L2 regularisation for sparse training.

``batch_size`` is the rows per forward pass everywhere; training minibatches are
``train_batch_size`` (``fine_tune``, ``distill``, ``train``).
"""
from ._report import DistillReport, PruneReport, QuantizeReport, Simplified, TrainReport
from .distill import distill
from .finetune import fine_tune
from .importance import Importance, global_importance
from .penalty import sparsity_penalty, train
from .prune import prune
from .quantize import quantize
from .rules import Rule, Rules
from .surrogate import SurrogateTree, rules, surrogate_tree

__all__ = [
    "prune", "fine_tune", "quantize", "distill", "surrogate_tree", "rules", "global_importance",
    "sparsity_penalty", "train",
    "Simplified", "PruneReport", "TrainReport", "QuantizeReport", "DistillReport", "SurrogateTree",
    "Rule", "Rules", "Importance",
]
