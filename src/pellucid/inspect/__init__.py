"""What is inside a model: its structure, its weights, and how both change while it trains.

- :func:`structure`: every layer with its kind, output shape and parameter count (a table and an
  SVG graph, traced with torch.fx where possible).
- :func:`weights`: per-tensor statistics and histograms of the parameters.
- :func:`tensorboard`: weight histograms, the graph and attribution images for TensorBoard.
- :class:`Monitor`: explain the same probe inputs every N training steps and keep the history.
"""
from .monitor import Monitor, Snapshot
from .structure import Layer, Structure, structure
from .tensorboard import tensorboard
from .weights import TensorStats, Weights, weights

__all__ = ["structure", "Structure", "Layer", "weights", "Weights", "TensorStats", "tensorboard",
           "Monitor", "Snapshot"]
