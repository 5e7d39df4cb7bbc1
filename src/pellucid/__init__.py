"""pellucid: explain neural networks.

Every method is a function ``method(model, inputs, *, target=None, ...)`` returning an
:class:`Explanation`; :func:`explain` runs any of them by name and :func:`methods` lists them.
"""
from ._version import __version__
from .adapters import wrap
from .attribution import (
    conductance,
    deeplift,
    exact_shapley,
    grad_cam,
    grad_cam_pp,
    gradient_x_input,
    guided_backprop,
    integrated_gradients,
    kernel_shap,
    lime,
    lrp,
    occlusion,
    permutation_shapley,
    saliency,
    smoothgrad,
)
from .explanation import Explanation
from .inputs import ModelInputs
from .model import Model
from .registry import explain, methods

# Submodules imported on first use (matplotlib, scikit-learn are slow to import).
_LAZY = ("plot", "zoo", "evaluate", "probe", "inspect", "reporting", "simplify", "features")


def __getattr__(name: str):
    import importlib

    if name == "report":  # the function pellucid.reporting.report: pellucid.report(items, path)
        return importlib.import_module(".reporting", __name__).report
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'pellucid' has no attribute {name!r}")

__all__ = [
    "__version__",
    "Explanation",
    "Model",
    "ModelInputs",
    "wrap",
    "explain",
    "methods",
    "saliency",
    "gradient_x_input",
    "integrated_gradients",
    "conductance",
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
