"""What has a layer learned? Activations, unit statistics, feature visualization, attention,
and which units carry a decision.

- :func:`activations`: outputs of named layers (one forward pass, hooks removed after);
- :func:`activation_stats`: dead, saturated and firing units over a data set (streaming);
- :func:`maximize` with objectives :func:`channel`, :func:`neuron`, :func:`direction`,
  :func:`class_logit`: the input that maximizes a unit (feature visualization);
- :func:`attention`, :func:`attention_rollout`, :func:`attention_flow`: attention weights of
  transformers and how they compose through the layers;
- :func:`conductance`: how much of a prediction flows through each unit of a layer (node
  importance), and :func:`top_units`; ``pellucid.integrated_gradients(..., layer=...)``
  attributes to a layer's output (token attributions through an embedding layer).
"""
from ..attribution.conductance import conductance, top_units
from .activations import activations
from .attention import attention
from .maximize import Visualization, maximize
from .objectives import Objective, channel, class_logit, direction, neuron
from .rollout import attention_flow, attention_rollout
from .stats import ActivationStats, LayerStats, activation_stats

__all__ = [
    "activations", "activation_stats", "ActivationStats", "LayerStats",
    "maximize", "Visualization", "Objective", "channel", "neuron", "direction", "class_logit",
    "attention", "attention_rollout", "attention_flow", "conductance", "top_units",
]
