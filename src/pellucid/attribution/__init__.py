"""Why did the model predict this? Attribution methods, each returning an ``Explanation``."""
from ._groups import grid_groups, slic_groups
from .cam import grad_cam, grad_cam_pp
from .conductance import conductance, top_units
from .control import input_attribution, random_attribution
from .gradient import gradient_x_input, saliency
from .integrated import integrated_gradients
from .lime import lime
from .occlusion import occlusion
from .relevance import deeplift, guided_backprop, lrp
from .shapley import exact_shapley, kernel_shap, permutation_shapley
from .smoothgrad import smoothgrad

__all__ = [
    "saliency",
    "gradient_x_input",
    "integrated_gradients",
    "lrp",
    "deeplift",
    "guided_backprop",
    "smoothgrad",
    "grad_cam",
    "grad_cam_pp",
    "conductance",
    "top_units",
    "random_attribution",
    "input_attribution",
    "exact_shapley",
    "kernel_shap",
    "permutation_shapley",
    "grid_groups",
    "slic_groups",
    "lime",
    "occlusion",
]
