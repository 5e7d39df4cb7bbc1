"""Can the explanation be trusted? Faithfulness, robustness, complexity, randomisation and
localisation metrics, each returning a :class:`Score`.

Every metric registers itself (:func:`metrics` lists them, :func:`pellucid.registry.get_metric`
describes one) and is called through the registry as ``metric(model, explanation, **options)``,
which is how :func:`compare` runs any of them. Metrics that never evaluate the model
(``sparseness``, ``complexity``, the localisation metrics) are exported without the model
argument: ``sparseness(explanation)``, ``pointing_game(explanation, mask)``.
"""
from ..registry import metrics
from ._score import Score
from .compare import Comparison, compare
from .completeness import completeness
from .complexity import complexity, sparseness
from .faithfulness import deletion, insertion, pixel_flipping, region_perturbation
from .faithfulness_random import faithfulness_correlation, infidelity
from .localisation import pointing_game, relevance_mass, relevance_rank
from .randomization import data_randomization, model_randomization
from .robustness import avg_sensitivity, max_sensitivity

__all__ = [
    "Score",
    "deletion", "insertion", "pixel_flipping", "region_perturbation",
    "faithfulness_correlation", "infidelity",
    "max_sensitivity", "avg_sensitivity",
    "sparseness", "complexity", "completeness",
    "pointing_game", "relevance_mass", "relevance_rank",
    "model_randomization", "data_randomization",
    "compare", "Comparison", "metrics",
]
