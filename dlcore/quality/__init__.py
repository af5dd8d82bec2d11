"""Sample quality of generative models: Fréchet distance in a dlcore classifier's features,
mode coverage on data with known modes."""

from dlcore.quality.classifier import FeatureNet, head_input, load_feature_net
from dlcore.quality.frechet import frechet_distance, gaussian_fit, gaussian_frechet
from dlcore.quality.modes import COVERED_FRACTION, mode_scores, near_modes
from dlcore.quality.report import QualityFields, quality_net, sample_quality

__all__ = [
    "COVERED_FRACTION",
    "FeatureNet",
    "QualityFields",
    "frechet_distance",
    "gaussian_fit",
    "gaussian_frechet",
    "head_input",
    "load_feature_net",
    "mode_scores",
    "near_modes",
    "quality_net",
    "sample_quality",
]
