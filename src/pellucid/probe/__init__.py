"""What would change the answer: adversarial examples, counterfactuals, interventions on inputs and
hidden units, and example-based explanations."""
from .adversarial import AttackResult, RobustnessCurve, fgsm, pgd, robustness_curve
from .counterfactual import Counterfactuals, counterfactual
from .examples import NearestExamples, nearest_examples
from .intervention import AblationResult, InterventionResult, PatchResult, ablate, intervene, patch
from .jsma import jsma

__all__ = [
    "fgsm", "pgd", "jsma", "robustness_curve", "AttackResult", "RobustnessCurve",
    "intervene", "ablate", "patch", "InterventionResult", "AblationResult", "PatchResult",
    "nearest_examples", "NearestExamples",
    "counterfactual", "Counterfactuals",
]
