"""Why did the model predict this? Attribution methods, each returning an ``Explanation``."""
from .cam import grad_cam, grad_cam_pp
from .control import input_attribution, random_attribution
from .gradient import gradient_x_input, saliency
from .integrated import integrated_gradients
from .smoothgrad import smoothgrad

__all__ = [
    "saliency",
    "gradient_x_input",
    "integrated_gradients",
    "smoothgrad",
    "grad_cam",
    "grad_cam_pp",
    "random_attribution",
    "input_attribution",
]
