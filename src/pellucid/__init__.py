"""pellucid: explain neural networks.

Every method is a function ``method(model, inputs, *, target=None, ...)`` returning an
:class:`Explanation`; :func:`explain` runs any of them by name and :func:`methods` lists them.
"""
from .attribution import (
    grad_cam,
    grad_cam_pp,
    gradient_x_input,
    integrated_gradients,
    saliency,
    smoothgrad,
)
from .attribution import exact_shapley, kernel_shap, lime, occlusion, permutation_shapley
from .attribution import deeplift, guided_backprop, lrp
from .explanation import Explanation
from .model import Model
from .adapters import wrap
from .registry import explain, methods

__version__ = "0.1.0"

_LAZY = ("plot", "zoo", "evaluate", "probe", "inspect", "report", "simplify", "features")  # submodules imported on first use (matplotlib, scikit-learn are slow)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'pellucid' has no attribute {name!r}")

__all__ = [
    "Explanation",
    "Model",
    "wrap",
    "explain",
    "methods",
    "saliency",
    "gradient_x_input",
    "integrated_gradients",
    "lrp",
    "deeplift",
    "guided_backprop",
    "smoothgrad",
    "grad_cam",
    "grad_cam_pp",
    "exact_shapley",
    "kernel_shap",
    "permutation_shapley",
    "lime",
    "occlusion",
]
