"""``shapes``: a generated world of coloured shapes on noisy backgrounds, with no download.

Each image (RGB, ``image_size`` x ``image_size``, values in [0, 1]) holds one shape
(``mode = "single"``) or 2-3 non-overlapping shapes (``mode = "scene"``). A shape is drawn by
testing every pixel centre against its outline in the shape's own frame,

    (u, v) = R(-theta) (p - c) / r      (c: centre, r: radius, theta: rotation)

so the per-pixel map ``seg`` is exactly the set of pixels painted with the shape's colour:
0 on the background, 1 + class on a shape. A scene also gets a caption from a small grammar,
always true of the image ("a red circle left of a blue square"): the relation is read off
the centres (left of / right of when |dx| > |dy|, else above / below; scenes whose centres
are nearly diagonal are redrawn), so a captioning model can learn it. With ``caption_order =
"drawn"`` the shapes are named in the random order they were drawn, so a scene has several
true captions (a 2-shape scene two, a 3-shape scene six) and only one is the reference;
``"reading"`` names them in order of x + y (top-left first), which makes the caption a
function of the image (what exact match needs): since a related pair's |dx| and |dy| differ
by at least MIN_GAP, sign(dx + dy) is the sign of the larger one, so every shape named before
the reference is "left of" or "above" it and every one after is "right of" or "below" it.

Fields: ``x`` [S, S, 3] float32; ``seg`` [S, S] int32 (role ``labels``); single mode adds
``y`` (the class, int32), scene mode ``caption`` [L] int32 tokens (0 = padding, then
``<bos> ... <eos>``; the vocabulary is ``info["vocab"]``).
"""

import functools
from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from dlcore.config.section import Seed
from dlcore.data.dataset import Dataset, Split, SplitFractions, split_sizes
from dlcore.data.subsets import cap_per_class

SHAPES = ("circle", "square", "triangle", "cross", "star", "diamond", "ring", "hexagon")
COLOURS = {  # saturated colours that stand out from the dark, grey background
    "red": (0.95, 0.15, 0.1),
    "green": (0.15, 0.85, 0.2),
    "blue": (0.2, 0.35, 1.0),
    "yellow": (0.95, 0.9, 0.15),
    "magenta": (0.9, 0.2, 0.9),
    "cyan": (0.2, 0.9, 0.95),
    "orange": (1.0, 0.55, 0.1),
    "white": (0.95, 0.95, 0.95),
}
RELATIONS = ("left of", "right of", "above", "below")
SPECIALS = ("<pad>", "<bos>", "<eos>")
WORDS = ("a", "and", "left", "right", "of", "above", "below")
VOCAB = (*SPECIALS, *WORDS, *COLOURS, *SHAPES)
CAPTION_LEN = 19  # <bos>, two clauses of at most 8 words joined by "and", <eos>
MIN_GAP = 2.0  # pixels by which |dx| and |dy| of a related pair must differ
CAPTION_ORDERS = ("drawn", "reading")


def _polygon(vertices: list[tuple[float, float]]) -> np.ndarray:
    return np.asarray(vertices, np.float64)


def _regular(n: int, radius: float = 1.0, phase: float = np.pi / 2) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star() -> np.ndarray:
    outer, inner = _regular(5), _regular(5, 0.45, np.pi / 2 + np.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(10, 2)


_W = 0.32  # half-width of the cross's arms
POLYGONS = {  # outlines in the unit frame, radius 1 (the shape's bounding circle)
    "square": _regular(4, 1.0, np.pi / 4),
    "triangle": _regular(3),
    # A rhombus, not a square at 45 degrees: shapes rotate freely, so it must differ.
    "diamond": _polygon([(0, 1), (-0.55, 0), (0, -1), (0.55, 0)]),
    "hexagon": _regular(6, 1.0, 0.0),
    "star": _star(),
    "cross": _polygon(
        [(_W, 1), (-_W, 1), (-_W, _W), (-1, _W), (-1, -_W), (-_W, -_W)]
        + [(-_W, -1), (_W, -1), (_W, -_W), (1, -_W), (1, _W), (_W, _W)]
    ),
}


def inside_polygon(u: np.ndarray, v: np.ndarray, poly_Ex2: np.ndarray) -> np.ndarray:
    """Even-odd rule: a point is inside when a ray to +u crosses the outline an odd number
    of times (vectorised over points and edges)."""
    a, b = poly_Ex2, np.concatenate([poly_Ex2[1:], poly_Ex2[:1]])  # edges a -> b
    u, v = u[..., None], v[..., None]
    straddles = (a[:, 1] > v) != (b[:, 1] > v)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_u = a[:, 0] + (v - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return (np.sum(straddles & (u < cross_u), axis=-1) % 2) == 1


@functools.cache
def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    ys.flags.writeable = xs.flags.writeable = False  # shared by every call: read-only
    return ys, xs


def shape_mask(name: str, size: int, centre, radius: float, theta: float) -> np.ndarray:
    """Boolean ``[size, size]``: pixel centres inside the shape (row = y, column = x).

    Example:
      >>> int(shape_mask("square", 8, (4.0, 4.0), 2.9, 0.0).sum())  # a 4x4 block
      16
    """
    ys, xs = _pixel_centres(size)
    dx, dy = xs - centre[0], ys - centre[1]
    c, s = np.cos(theta), np.sin(theta)
    u, v = (c * dx + s * dy) / radius, (-s * dx + c * dy) / radius
    rho = np.hypot(u, v)
    if name == "circle":
        return rho <= 1.0
    if name == "ring":
        return (rho <= 1.0) & (rho >= 0.55)
    # Only pixels in the bounding circle can be inside: the outline test runs on those.
    disc = rho <= 1.0
    disc[disc] = inside_polygon(u[disc], v[disc], POLYGONS[name])
    return disc


class ShapesConfig(SplitFractions):
    """Generated RGB images of coloured shapes (see the module docstring).

    ``classes`` picks the shapes and their label order (a subset gives labels 0..k-1: a
    transfer-learning source on some shapes, a target on others). Sizes are radii as a
    fraction of the image side.
    """

    name: Literal["shapes"] = "shapes"
    n_samples: PositiveInt = 6000
    image_size: int = Field(32, ge=12, le=256, description="side S of the square images")
    mode: Literal["single", "scene"] = "single"
    classes: list[Literal[SHAPES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(SHAPES), min_length=2, description="shapes, label order"
    )
    min_size: float = Field(0.2, gt=0.0, le=0.5, description="smallest radius / side")
    max_size: float = Field(0.4, gt=0.0, le=0.5, description="largest radius / side")
    noise: float = Field(0.08, ge=0.0, le=1.0, description="std of the pixel noise")
    train_per_class: PositiveInt | None = Field(
        None, description="keep at most this many training images per class"
    )
    seed: Seed = Field(0, description="seed of the generator (not of training)")
    caption_order: Literal[CAPTION_ORDERS] = Field(  # type: ignore[valid-type]
        "drawn", description="scene captions name the shapes as drawn or by x + y (reading)"
    )
    preprocess: Literal["channel_mean", "standardize", "none"] = "channel_mean"

    @model_validator(mode="after")
    def _consistent(self):
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes lists a shape twice: {self.classes}")
        if self.min_size > self.max_size:
            raise ValueError(f"min_size {self.min_size} is larger than max_size {self.max_size}")
        if self.mode == "scene":
            if self.max_size > 0.25:
                raise ValueError("scene mode needs max_size <= 0.25 so that 3 shapes fit")
            if self.train_per_class is not None:
                raise ValueError("train_per_class needs mode = 'single' (scenes have no class)")
        if self.min_size * self.image_size < 3:
            raise ValueError(
                f"min_size {self.min_size} x image_size {self.image_size} is a radius under "
                "3 pixels: shapes would not be recognisable; raise either"
            )
        return self

    def host_bytes(self) -> int:
        """About the host memory generating the data takes (checked before it is)."""
        return self.n_samples * self.image_size**2 * 40


def _background(rng, size: int, noise: float) -> np.ndarray:
    grey = rng.uniform(0.0, 0.35)
    return np.full((size, size, 3), grey) + noise * rng.standard_normal((size, size, 3))


def _draw(rng, cfg: ShapesConfig, label: int, image, seg, centre, radius) -> str:
    """Paints shape ``classes[label]`` in a random colour; returns the colour's name."""
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    mask = shape_mask(cfg.classes[label], cfg.image_size, centre, radius, rng.uniform(0, 2 * np.pi))
    image[mask] = np.asarray(COLOURS[colour]) + cfg.noise * rng.standard_normal((mask.sum(), 3))
    seg[mask] = 1 + label
    return colour


def _radius(rng, cfg: ShapesConfig) -> float:
    return rng.uniform(cfg.min_size, cfg.max_size) * cfg.image_size


def _single(rng, cfg: ShapesConfig, label: int):
    size = cfg.image_size
    image, seg = _background(rng, size, cfg.noise), np.zeros((size, size), np.int32)
    radius = _radius(rng, cfg)
    centre = rng.uniform(radius, size - radius, 2)
    _draw(rng, cfg, label, image, seg, centre, radius)
    return image, seg


def relation(a, b) -> str:
    """Where centre ``a`` is relative to centre ``b`` (image rows grow downwards)."""
    dx, dy = a[0] - b[0], a[1] - b[1]
    if abs(dx) > abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def _placements(rng, cfg: ShapesConfig, count: int):
    """Centres and radii of ``count`` shapes whose bounding circles are apart and whose
    related pairs (each to the second shape) are clearly horizontal or vertical."""
    size = cfg.image_size
    while True:
        radii = [_radius(rng, cfg) for _ in range(count)]
        centres = [rng.uniform(r, size - r, 2) for r in radii]
        if cfg.caption_order == "reading":  # before the checks: they use the order
            order = np.argsort([c[0] + c[1] for c in centres], kind="stable")
            radii, centres = [radii[i] for i in order], [centres[i] for i in order]
        apart = all(
            np.hypot(*(centres[i] - centres[j])) > radii[i] + radii[j] + 1
            for i in range(count)
            for j in range(i)
        )
        clear = all(
            abs(abs(centres[i][0] - centres[1][0]) - abs(centres[i][1] - centres[1][1])) >= MIN_GAP
            for i in range(count)
            if i != 1
        )
        if apart and clear:
            return centres, radii


def _scene(rng, cfg: ShapesConfig):
    size = cfg.image_size
    image, seg = _background(rng, size, cfg.noise), np.zeros((size, size), np.int32)
    count = int(rng.integers(2, 4))
    centres, radii = _placements(rng, cfg, count)
    labels = rng.integers(len(cfg.classes), size=count)
    colours = [
        _draw(rng, cfg, int(k), image, seg, c, r)
        for k, c, r in zip(labels, centres, radii, strict=True)
    ]
    names = [f"a {colours[i]} {cfg.classes[labels[i]]}" for i in range(count)]
    others = (0, 2)[: count - 1]  # each other shape is placed relative to the second one
    clauses = [f"{names[i]} {relation(centres[i], centres[1])} {names[1]}" for i in others]
    return image, seg, " and ".join(clauses)


def encode_caption(text: str) -> np.ndarray:
    """``<bos> words <eos>`` as int32 ids of :data:`VOCAB`, padded with 0 to CAPTION_LEN.

    Example:
      >>> decode_caption(encode_caption("a red circle above a blue square"))
      'a red circle above a blue square'
    """
    ids = [VOCAB.index("<bos>"), *(VOCAB.index(w) for w in text.split()), VOCAB.index("<eos>")]
    return np.asarray(ids + [0] * (CAPTION_LEN - len(ids)), np.int32)


def decode_caption(ids) -> str:
    """The words of a caption, without ``<bos>``, ``<eos>`` and padding."""
    words = [VOCAB[int(i)] for i in ids]
    if "<eos>" in words:
        words = words[: words.index("<eos>")]
    return " ".join(w for w in words if w not in SPECIALS)


def make_shapes(cfg: ShapesConfig) -> Dataset:
    """Draws ``n_samples`` images (classes balanced and shuffled in single mode); the splits
    are consecutive slices (test, val, train); the same config always gives the same data."""
    rng = np.random.default_rng(cfg.seed)
    k = len(cfg.classes)
    labels = rng.permutation(np.arange(cfg.n_samples) % k).astype(np.int32)
    size = cfg.image_size
    # Drawn in float64, stored as float32 and clipped there (the same values, less memory).
    x = np.empty((cfg.n_samples, size, size, 3), np.float32)
    seg = np.empty((cfg.n_samples, size, size), np.int32)
    captions = []
    for i, label in enumerate(labels):
        if cfg.mode == "single":
            x[i], seg[i] = _single(rng, cfg, int(label))
        else:
            x[i], seg[i], text = _scene(rng, cfg)
            captions.append(encode_caption(text))
    fields = {"x": np.clip(x, 0.0, 1.0, out=x), "seg": seg}
    if cfg.mode == "single":
        fields["y"] = labels
    else:
        fields["caption"] = np.stack(captions)
    _, n_val, n_test = split_sizes(cfg.n_samples, cfg.val_fraction, cfg.test_fraction)
    cuts = [n_test, n_test + n_val]
    parts = {name: np.split(a, cuts) for name, a in fields.items()}
    test, val, train = (Split(**{n: p[i] for n, p in parts.items()}) for i in range(3))
    if cfg.train_per_class is not None:
        train = cap_per_class(train, cfg.train_per_class)
    info = {"image_shape": [cfg.image_size] * 2, "classes": list(cfg.classes), "seg_classes": k + 1}
    roles = {"seg": "labels"}
    if cfg.mode == "scene":
        info |= {"vocab": list(VOCAB), "vocab_size": len(VOCAB), "caption_len": CAPTION_LEN}
        roles["caption"] = "tokens"
    num_classes = k if cfg.mode == "single" else None
    return Dataset("shapes", train, val, test, num_classes, info=info, roles=roles)
