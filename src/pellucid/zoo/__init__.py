"""Demo data and small models for examples, docs and tests.

Everything here is plain PyTorch and ships with the package: nothing is downloaded at run time.
The digits data come from scikit-learn's bundled copy of the UCI handwritten digits (8x8 images),
and the only "pretrained" weights are trained locally in a few seconds and cached on disk.
The ``planted_*`` data sets know where the evidence for their labels lies (for the localisation
metrics in ``pellucid.evaluate``).
"""

from pellucid.zoo.digits import DigitsCNN, digits_cnn, load_digits
from pellucid.zoo.minilm import MiniLMClassifier, minilm_sentiment, planted_texts
from pellucid.zoo.models import GapCNN, TinyResNet
from pellucid.zoo.planted import (
    planted_patch_cnn,
    planted_patches,
    planted_sentences,
    planted_tabular,
    planted_tabular_mlp,
    planted_text_model,
)
from pellucid.zoo.resnet import ResNet, resnet18, resnet50
from pellucid.zoo.text_transformer import TextTransformer, WordTokenizer, planted_token_texts, planted_transformer
from pellucid.zoo.vit import PatchViT, planted_vit

__all__ = [
    "load_digits", "DigitsCNN", "digits_cnn", "TinyResNet", "GapCNN",
    "planted_patches", "planted_patch_cnn", "planted_tabular", "planted_tabular_mlp",
    "planted_sentences", "planted_text_model", "minilm_sentiment", "MiniLMClassifier", "planted_texts",
    "ResNet", "resnet18", "resnet50", "planted_token_texts", "planted_transformer", "TextTransformer",
    "WordTokenizer", "planted_vit", "PatchViT",
]
