"""``dlcore viz``: a run's checkpoint opened and looked at with the viz tools, as PNGs.

Every setting, layer, unit and input is checked, and every picture computed, before the
output directory is created, so bad input writes nothing. The pictures are RGB arrays
(:mod:`dlcore.viz.images`); :func:`visualize_run` writes them.

Kinds and what their PNG shows:
  filters   ``filters_<layer>.png``: the first (or ``layer``'s) conv kernels.
  features  ``features_<layer>_<input>.png``: the layer's feature maps for one input.
  maximize  ``maximize_<layer>_unit<K>.png`` (or ``_all`` units): the synthesised inputs.
  dream     ``dream_<layer>_<photo>.png``: the photograph and its dream, side by side.
  saliency  ``saliency_<input>_class<K>.png``: input | saliency (| SmoothGrad).
  attention (seq2seq runs) ``attention_*.png``: each word's attention over a scene, or the
            attention matrix of ``input`` or a few examples (:mod:`dlcore.viz.attention_run`).
"""

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.config.section import SEED_LIMIT
from dlcore.runs.errors import RunDirError, RunIOError
from dlcore.viz.attention_run import attention_pictures, open_seq2seq_run
from dlcore.viz.dream import deep_dream
from dlcore.viz.features import feature_grid, feature_maps
from dlcore.viz.filters import conv_kernels, filter_grid, pick_kernel
from dlcore.viz.images import grid, heat, save_png, show_input
from dlcore.viz.inputs import channel_stats, photo_as_input, sample_photo
from dlcore.viz.maximize import check_unit, maximize_unit
from dlcore.viz.probe import OUTPUT, check_layer, layer_shapes
from dlcore.viz.saliency import check_class, saliency, smoothgrad

KINDS = ("filters", "features", "maximize", "dream", "saliency", "attention")
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class VizOptions:
    """What to look at and how (``None`` picks the documented default).

    Attributes:
      layer: layer path; default: the first conv layer (filters), the first feature-map
        layer (features), ``output`` (maximize) or the last feature-map layer (dream).
      unit: channel or class; default: every unit (maximize), the predicted class (saliency).
      split, index: the data example to look at (features, saliency).
      photo: a sample photograph instead of a data example (``dream`` defaults to china).
      steps, lr: ascent steps and step length (maximize 200 / 0.1, dream 20 / 0.02).
      octaves, size: dream octaves and the dreamed image's side (default 128 pixels).
      smooth: SmoothGrad samples shown beside the plain saliency map (0 = none).
      scale: pixel enlargement; default: filters 8, feature maps and maximize tiles about
        64 pixels, saliency tiles about 128, dream 1.
      seed: PRNG seed of the starting noise and the jitter.
      input: attention of a text seq2seq run: the source text to decode (default: examples).
    """

    layer: str | None = None
    unit: int | None = None
    split: str = "test"
    index: int = 0
    photo: str | None = None
    steps: int | None = None
    lr: float | None = None
    octaves: int = 3
    size: int = 128
    smooth: int = 0
    scale: int | None = None
    seed: int = 0
    input: str | None = None


@dataclasses.dataclass(frozen=True)
class ImageRun:
    """A restored image model: the module, its variables and its data."""

    path: pathlib.Path
    module: object
    variables: dict
    data: object
    image_shape: tuple[int, int, int]

    def example(self) -> jax.Array:
        return jnp.zeros((1, *self.image_shape), jnp.float32)


def open_image_run(run_dir: str | pathlib.Path, checkpoint: str = "latest") -> ImageRun:
    """The run's model at a checkpoint, after checking it reads images ``[H, W, C]``.

    Raises:
      RunDirError: not a run, no checkpoint, no single model, or inputs that are not images.
    """
    from dlcore.experiment.restore import restore_run

    restored = restore_run(run_dir, checkpoint)
    module = getattr(restored.experiment.task, "model", None)
    data = restored.experiment.data
    if module is None:
        raise RunDirError(f"{restored.run.path}: dlcore viz needs a run with one model")
    shape = tuple(data.spec().fields["x"].shape) if "x" in data.spec().fields else ()
    if len(shape) != 3:
        raise RunDirError(
            f"{restored.run.path}: dlcore viz needs image inputs x [H, W, C]; data "
            f"{data.name!r} has x {list(shape)} (use an image layout)"
        )
    variables = {"params": restored.state.params, **restored.state.model_state}
    return ImageRun(restored.run.path, module, variables, data, shape)


def _scale(opts: VizOptions, side: int, target: int) -> int:
    """``opts.scale``, or the enlargement that makes a ``side``-pixel tile about ``target``."""
    if opts.scale is not None:
        if opts.scale < 1:
            raise ValueError(f"scale must be >= 1; got {opts.scale}")
        return opts.scale
    return max(1, target // side)


def _or(value, default):
    return default if value is None else value


def _input(run: ImageRun, opts: VizOptions) -> tuple[str, np.ndarray]:
    """(name, image [H, W, C]) of the data example or photograph asked for."""
    h, w, c = run.image_shape
    if opts.photo is not None:
        stats = channel_stats(run.data.train["x"])
        return opts.photo, photo_as_input(sample_photo(opts.photo, h, w), c, *stats)
    if opts.split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {opts.split!r}")
    x = run.data.split(opts.split)["x"]
    if not 0 <= opts.index < len(x):
        raise ValueError(
            f"index {opts.index} is out of range: the {opts.split} split has {len(x)} examples"
        )
    return f"{opts.split}{opts.index}", np.asarray(x[opts.index], np.float32)


def _feature_layers(run: ImageRun) -> list[str]:
    shapes = layer_shapes(run.module, run.variables, run.example())
    maps = [name for name, shape in shapes.items() if len(shape) == 4]
    if not maps:
        raise ValueError("the model has no layer with feature maps [H, W, C]")
    return maps


def _filters(run: ImageRun, opts: VizOptions) -> tuple[dict, list[str]]:
    kernels = conv_kernels(run.module, run.variables, run.example())
    name, kernel = pick_kernel(kernels, opts.layer)
    image = filter_grid(np.asarray(kernel), scale=_scale(opts, 8, 64))
    return {f"filters_{name}": image}, [f"{name}: kernel {list(kernel.shape)}"]


def _features(run: ImageRun, opts: VizOptions) -> tuple[dict, list[str]]:
    layer = opts.layer or _feature_layers(run)[0]
    source, x = _input(run, opts)
    maps = np.asarray(feature_maps(run.module, run.variables, jnp.asarray(x), layer))
    image = feature_grid(maps, scale=_scale(opts, max(maps.shape[:2]), 64))
    return {f"features_{layer}_{source}": image}, [f"{layer}: {maps.shape[-1]} maps {source}"]


def _maximize(run: ImageRun, opts: VizOptions) -> tuple[dict, list[str]]:
    layer = opts.layer or OUTPUT
    shape = check_layer(layer_shapes(run.module, run.variables, run.example()), layer)
    units = range(shape[-1]) if opts.unit is None else [opts.unit]
    for unit in units:
        check_unit(shape, layer, unit)
    scale = _scale(opts, max(run.image_shape[:2]), 64)
    mean, std = channel_stats(run.data.train["x"])
    key = jax.random.PRNGKey(opts.seed)
    noise = jax.random.normal(jax.random.fold_in(key, 0), run.image_shape)
    x0 = np.asarray(mean + 0.1 * std * np.asarray(noise), np.float32)
    tiles, lines = [], []
    for unit in units:
        result = maximize_unit(
            run.module,
            run.variables,
            x0,
            jax.random.fold_in(key, 1),
            layer=layer,
            unit=unit,
            mean=mean,
            std=std,
            steps=_or(opts.steps, 200),
            lr=_or(opts.lr, 0.1),
        )
        tiles.append(show_input(np.asarray(result.image)))
        lines.append(f"{layer} unit {unit}: {float(result.start):.4g} -> {float(result.end):.4g}")
    suffix = "all" if opts.unit is None else f"unit{opts.unit}"
    return {f"maximize_{layer}_{suffix}": grid(np.stack(tiles), scale=scale)}, lines


def _dream(run: ImageRun, opts: VizOptions) -> tuple[dict, list[str]]:
    layer = opts.layer or _feature_layers(run)[-1]
    check_layer(layer_shapes(run.module, run.variables, run.example()), layer, feature_maps=True)
    photo = opts.photo or "china"
    if opts.size < 1:
        raise ValueError(f"size must be >= 1; got {opts.size}")
    mean, std = channel_stats(run.data.train["x"])
    x = photo_as_input(sample_photo(photo, opts.size), run.image_shape[2], mean, std)
    dreamed, values = deep_dream(
        run.module,
        run.variables,
        jnp.asarray(x),
        jax.random.PRNGKey(opts.seed),
        layer=layer,
        octaves=opts.octaves,
        steps=_or(opts.steps, 20),
        lr=_or(opts.lr, 0.02),
        std=std,
    )
    tiles = np.stack([show_input(x), show_input(np.asarray(dreamed))])
    image = grid(tiles, cols=2, scale=_scale(opts, opts.size, opts.size))
    line = f"{layer} on {photo} {opts.size}px: J {float(values[0]):.4g} -> {float(values[-1]):.4g}"
    return {f"dream_{layer}_{photo}": image}, [line]


def _saliency(run: ImageRun, opts: VizOptions) -> tuple[dict, list[str]]:
    source, x = _input(run, opts)
    x = jnp.asarray(x)
    if opts.smooth < 0:
        raise ValueError(f"smooth must be >= 0 samples; got {opts.smooth}")
    cls = opts.unit
    if cls is None:
        check_class(run.module, run.variables, x, 0)
        cls = int(jnp.argmax(run.module.apply(run.variables, x[None], train=False)[0]))
    maps = [saliency(run.module, run.variables, x, cls)]
    if opts.smooth:
        key = jax.random.PRNGKey(opts.seed)
        maps.append(smoothgrad(run.module, run.variables, x, cls, key, samples=opts.smooth))
    tiles = np.stack([show_input(np.asarray(x)), *(heat(np.asarray(m)) for m in maps)])
    image = grid(tiles, cols=len(tiles), scale=_scale(opts, max(run.image_shape[:2]), 128))
    return {f"saliency_{source}_class{cls}": image}, [f"{source}: class {cls}"]


RENDER = {
    "filters": _filters,
    "features": _features,
    "maximize": _maximize,
    "dream": _dream,
    "saliency": _saliency,
}


def render(run: ImageRun, kind: str, opts: VizOptions) -> tuple[dict[str, np.ndarray], list[str]]:
    """The pictures ``{file stem: RGB [H, W, 3]}`` of one kind, and one summary line each.

    Raises:
      ValueError: one line for an unknown kind, layer, unit, input or setting.
    """
    if kind not in RENDER:
        raise ValueError(f"unknown viz kind {kind!r}; kinds: {', '.join(KINDS)}")
    return RENDER[kind](run, opts)


def visualize_run(
    run_dir: str | pathlib.Path,
    kind: str,
    opts: VizOptions = VizOptions(),
    out: str | pathlib.Path | None = None,
    checkpoint: str = "latest",
) -> tuple[list[pathlib.Path], list[str]]:
    """Writes one kind of picture of a run's model as PNGs (default ``RUN_DIR/viz/``).

    Returns:
      The files written and the summary lines (e.g. activations before and after ascent).

    Raises:
      RunDirError, ValueError: bad input, before anything is written.
      RunIOError: if a file cannot be written.
    """
    if kind not in KINDS:  # before the slow restore
        raise ValueError(f"unknown viz kind {kind!r}; kinds: {', '.join(KINDS)}")
    if not 0 <= opts.seed < SEED_LIMIT:
        raise ValueError(f"seed must be in [0, 2**32); got {opts.seed}")
    if kind == "attention":  # a seq2seq run, not an image classifier: its own loader
        run = open_seq2seq_run(run_dir, checkpoint)
        pictures, lines = attention_pictures(run, opts)
    else:
        run = open_image_run(run_dir, checkpoint)
        pictures, lines = render(run, kind, opts)
    folder = pathlib.Path(out) if out is not None else run.path / "viz"
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stem, image in pictures.items():
            written.append(save_png(folder / f"{stem.replace('/', '.')}.png", image))
    except OSError as err:
        raise RunIOError(f"{folder}: cannot write the pictures ({err})") from None
    return written, lines
