"""Looking inside a trained image model: filters, feature maps, activation maximisation,
DeepDream and saliency maps, as pure JAX functions of (module, variables, inputs), and the
``dlcore viz`` command that makes PNGs of a run's checkpoint with them."""

from dlcore.viz.attention import attention_matrix_picture, caption_attention_picture, upsample
from dlcore.viz.dream import deep_dream, octave_sizes
from dlcore.viz.features import feature_grid, feature_maps
from dlcore.viz.filters import conv_kernels, filter_grid, filter_tiles, pick_kernel
from dlcore.viz.from_run import KINDS, ImageRun, VizOptions, open_image_run, render, visualize_run
from dlcore.viz.images import grid, heat, save_png, show_input, to_unit, to_unit_symmetric
from dlcore.viz.inputs import PHOTOS, channel_stats, photo_as_input, sample_photo
from dlcore.viz.maximize import Ascent, maximize_unit, unit_activation
from dlcore.viz.priors import gaussian_blur, jitter, l2_penalty, total_variation
from dlcore.viz.probe import OUTPUT, check_layer, layer_output, layer_shapes
from dlcore.viz.saliency import class_score, saliency, smoothgrad

__all__ = [
    "KINDS",
    "OUTPUT",
    "PHOTOS",
    "Ascent",
    "ImageRun",
    "VizOptions",
    "attention_matrix_picture",
    "caption_attention_picture",
    "channel_stats",
    "check_layer",
    "class_score",
    "conv_kernels",
    "deep_dream",
    "feature_grid",
    "feature_maps",
    "filter_grid",
    "filter_tiles",
    "gaussian_blur",
    "grid",
    "heat",
    "jitter",
    "l2_penalty",
    "layer_output",
    "layer_shapes",
    "maximize_unit",
    "octave_sizes",
    "open_image_run",
    "photo_as_input",
    "pick_kernel",
    "render",
    "saliency",
    "sample_photo",
    "save_png",
    "show_input",
    "smoothgrad",
    "to_unit",
    "to_unit_symmetric",
    "total_variation",
    "unit_activation",
    "upsample",
    "visualize_run",
]
