"""Can the explanation be trusted? Faithfulness, robustness, complexity, randomisation and
localisation metrics, each returning a :class:`Score`."""
from ._score import Score
from .completeness import completeness
from .complexity import complexity, sparseness
from .faithfulness import deletion, insertion, pixel_flipping, region_perturbation
from .faithfulness_random import faithfulness_correlation, infidelity
from .robustness import avg_sensitivity, max_sensitivity
from .localisation import pointing_game, relevance_mass, relevance_rank
from .randomization import data_randomization, model_randomization
from .compare import Comparison, compare

__all__ = [
    "Score",
    "deletion", "insertion", "pixel_flipping", "region_perturbation",
    "faithfulness_correlation", "infidelity",
    "max_sensitivity", "avg_sensitivity",
    "sparseness", "complexity", "completeness",
    "pointing_game", "relevance_mass", "relevance_rank",
    "model_randomization", "data_randomization",
    "compare", "Comparison",
]
