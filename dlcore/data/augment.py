"""Image augmentation inside the compiled step: pure per-example transforms, chained and
vmapped over the batch.

A per-example transform is ``(key, x_HxWxC, seg_HxW | None) -> (x, seg)``; spatial ones
(crop, flip, rotation) move an aligned per-pixel integer map ``seg`` with the image
(nearest neighbour, zero = background where the image is padded), the others (colour
jitter, cutout) touch only the image. :func:`chain` composes them, :func:`batched` maps
one over ``[B, H, W, C]`` with a key per example. Nothing branches in Python on a traced
value, so one compile serves every step; the random draws depend only on the key, and a
task passes ``state.step_key("augment")``, so a resumed run draws what it would have drawn.

Example:
  >>> import jax, jax.numpy as jnp
  >>> augment = batched(chain(random_crop(2), random_hflip()))
  >>> x, seg = augment(jax.random.key(0), jnp.ones((4, 8, 8, 3)), None)
  >>> x.shape, seg
  ((4, 8, 8, 3), None)
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates
from pydantic import Field, NonNegativeInt

from dlcore.config.errors import FieldError
from dlcore.config.section import Section
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need

Seg = jax.Array | None
Transform = Callable[[jax.Array, jax.Array, Seg], tuple[jax.Array, Seg]]  # one example
Augment = Callable[[jax.Array, jax.Array, Seg], tuple[jax.Array, Seg]]  # [B, H, W, C]

# ITU-R BT.601 luma, the grey level of an RGB pixel (torchvision's rgb_to_grayscale).
LUMA = (0.299, 0.587, 0.114)


def identity(key: jax.Array, x: jax.Array, seg: Seg) -> tuple[jax.Array, Seg]:
    """No augmentation: ``(x, seg)`` unchanged (what an all-off section makes)."""
    del key
    return x, seg


def _both(fn: Callable[[jax.Array], jax.Array], x: jax.Array, seg: Seg) -> tuple[jax.Array, Seg]:
    return fn(x), None if seg is None else fn(seg)


# ---- deterministic transforms of one example ---------------------------------------------


def pad_crop(x: jax.Array, top: jax.Array, left: jax.Array, padding: int) -> jax.Array:
    """The ``[H, W, ...]`` window at ``(top, left)`` of ``x`` zero-padded by ``padding``
    on every side: ``out[i, j] = xpad[top + i, left + j]``, ``0 <= top, left <= 2 padding``.
    """
    h, w = x.shape[:2]
    rest = ((0, 0),) * (x.ndim - 2)
    padded = jnp.pad(x, ((padding, padding), (padding, padding), *rest))
    start = (top, left) + (0,) * (x.ndim - 2)
    return jax.lax.dynamic_slice(padded, start, (h, w, *x.shape[2:]))


def hflip(x: jax.Array, flip: jax.Array) -> jax.Array:
    """``x[:, ::-1]`` (the W axis reversed) where ``flip`` is true, else ``x``."""
    return jnp.where(flip, x[:, ::-1], x)


def rotate(x: jax.Array, angle: jax.Array, order: int = 1) -> jax.Array:
    """``x [H, W, ...]`` turned counter-clockwise by ``angle`` radians about its centre.

    Output pixel ``p`` reads the input at ``c + R p'`` with ``p' = p - c``, the centre
    ``c = ((H-1)/2, (W-1)/2)`` and, in (row, column) coordinates,
    ``R = [[cos a, sin a], [-sin a, cos a]]``, so ``a = pi/2`` on a square image is
    ``np.rot90``. Bilinear (``order=1``, images) or nearest-neighbour (``order=0``,
    integer maps); pixels read from outside the image are 0.
    """
    if order not in (0, 1):
        raise ValueError(f"rotate: order must be 0 (nearest) or 1 (bilinear); got {order}")
    h, w = x.shape[:2]
    rows, cols = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    src_r = cy + cos * (rows - cy) + sin * (cols - cx)  # [H, W]
    src_c = cx - sin * (rows - cy) + cos * (cols - cx)
    if order == 0:
        r, c = jnp.floor(src_r + 0.5).astype(jnp.int32), jnp.floor(src_c + 0.5).astype(jnp.int32)
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        picked = x[jnp.clip(r, 0, h - 1), jnp.clip(c, 0, w - 1)]
        inside = inside.reshape(inside.shape + (1,) * (x.ndim - 2))
        return jnp.where(inside, picked, jnp.zeros_like(picked))
    flat = x.reshape(h, w, -1)
    out = jax.vmap(
        lambda ch: map_coordinates(ch, [src_r, src_c], order=1, mode="constant", cval=0.0),
        in_axes=2,
        out_axes=2,
    )(flat)
    return out.reshape(x.shape)


def grey(x: jax.Array) -> jax.Array:
    """``[H, W]`` grey levels: the luma of RGB, the channel mean of other images."""
    if x.shape[-1] == 3:
        return x @ jnp.asarray(LUMA, x.dtype)
    return jnp.mean(x, axis=-1)


def adjust_brightness(x: jax.Array, factor: jax.Array) -> jax.Array:
    """``factor * x``."""
    return factor * x


def adjust_contrast(x: jax.Array, factor: jax.Array) -> jax.Array:
    """``m + factor (x - m)`` with ``m`` the image's mean grey level."""
    m = jnp.mean(grey(x))
    return m + factor * (x - m)


def adjust_saturation(x: jax.Array, factor: jax.Array) -> jax.Array:
    """``g + factor (x - g)`` with ``g`` each pixel's grey level (0 = greyscale)."""
    g = grey(x)[..., None]
    return g + factor * (x - g)


def cutout(x: jax.Array, top: jax.Array, left: jax.Array, side: int) -> jax.Array:
    """``x`` with the square ``[top, top + side) x [left, left + side)`` (clipped at the
    borders; ``top``, ``left`` may be negative) set to 0 in every channel."""
    h, w = x.shape[:2]
    rows = jnp.arange(h)[:, None]
    cols = jnp.arange(w)[None, :]
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return jnp.where(inside[..., None], jnp.zeros_like(x), x)


# ---- random transforms (per example) -------------------------------------------------------


def random_crop(padding: int) -> Transform:
    """Zero-pad by ``padding`` and crop back to ``[H, W]`` at a uniform offset in
    ``[0, 2 padding]^2`` (a shift of up to ``padding`` pixels)."""

    def transform(key, x, seg):
        top, left = jax.random.randint(key, (2,), 0, 2 * padding + 1)
        return _both(lambda a: pad_crop(a, top, left, padding), x, seg)

    return transform


def random_hflip() -> Transform:
    """Mirror left-right with probability 1/2."""

    def transform(key, x, seg):
        flip = jax.random.bernoulli(key)
        return _both(lambda a: hflip(a, flip), x, seg)

    return transform


def random_rotation(max_degrees: float) -> Transform:
    """Rotate by a uniform angle in ``[-max_degrees, max_degrees]``: the image bilinearly,
    ``seg`` by nearest neighbour; corners uncovered by the turn are 0."""
    limit = float(max_degrees) * jnp.pi / 180.0

    def transform(key, x, seg):
        angle = jax.random.uniform(key, (), minval=-limit, maxval=limit)
        out = rotate(x, angle, order=1).astype(x.dtype)
        return out, None if seg is None else rotate(seg, angle, order=0)

    return transform


def color_jitter(
    brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0
) -> Transform:
    """Brightness, then contrast, then saturation, each by a factor uniform in
    ``[1 - s, 1 + s]`` (``s = 0`` leaves that one out), then clipped to the range
    ``[min x, max x]`` the example already spans, so raw, [0, 1] and standardized images
    all keep their range. ``seg`` is untouched."""
    steps = [
        (s, fn)
        for s, fn in (
            (brightness, adjust_brightness),
            (contrast, adjust_contrast),
            (saturation, adjust_saturation),
        )
        if s > 0
    ]

    def transform(key, x, seg):
        if not steps:
            return x, seg
        factors = jax.random.uniform(key, (len(steps),), minval=-1.0, maxval=1.0)
        out = x
        for i, (strength, fn) in enumerate(steps):
            out = fn(out, (1.0 + strength * factors[i]).astype(x.dtype))
        return jnp.clip(out, jnp.min(x), jnp.max(x)), seg

    return transform


def random_cutout(side: int) -> Transform:
    """Zero a ``side x side`` square of the image (DeVries & Taylor 2017) whose centre is
    uniform over the pixels, so near a border only part of it lies inside; ``seg`` is
    untouched (the object is occluded, not removed)."""

    def transform(key, x, seg):
        h, w = x.shape[:2]
        centre = jax.random.randint(key, (2,), 0, jnp.array([h, w]))
        return cutout(x, centre[0] - side // 2, centre[1] - side // 2, side), seg

    return transform


def chain(*transforms: Transform) -> Transform:
    """The transforms in order, the i-th drawing from ``fold_in(key, i)``."""

    def transform(key, x, seg):
        for i, t in enumerate(transforms):
            x, seg = t(jax.random.fold_in(key, i), x, seg)
        return x, seg

    return transform


def batched(transform: Transform) -> Augment:
    """``transform`` over a batch ``[B, H, W, C]`` (and ``seg [B, H, W]``), with the
    per-example keys ``split(key, B)``."""

    def augment(key, x_BxHxWxC, seg_BxHxW=None):
        if x_BxHxWxC.ndim != 4:
            raise ValueError(
                f"augmentation needs images [B, H, W, C]; got {tuple(x_BxHxWxC.shape)}"
            )
        if seg_BxHxW is not None and seg_BxHxW.shape != x_BxHxWxC.shape[:3]:
            raise ValueError(
                f"seg must be [B, H, W] = {tuple(x_BxHxWxC.shape[:3])} like the images; "
                f"got {tuple(seg_BxHxW.shape)}"
            )
        keys = jax.random.split(key, x_BxHxWxC.shape[0])
        return jax.vmap(transform)(keys, x_BxHxWxC, seg_BxHxW)

    return augment


# ---- configuration -------------------------------------------------------------------------

IMAGES = Need("x", ("features",), "images [H, W, C] (e.g. digits with layout = 'image')", (3,))


class AugmentSection(Section):
    """Random training-time transforms of image inputs (``[task.augment]``), applied in
    this order: crop, flip, rotation, colour jitter, cutout. All are off by default, and
    evaluation never augments.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> augment = AugmentSection(hflip=True, cutout=2).make()
      >>> augment(jax.random.key(0), jnp.ones((2, 6, 6, 1)), None)[0].shape
      (2, 6, 6, 1)
    """

    crop_padding: NonNegativeInt = Field(
        0, description="zero-pad by this many pixels, crop back at a random offset"
    )
    hflip: bool = Field(False, description="mirror left-right with probability 1/2")
    rotate_degrees: float = Field(
        0.0, ge=0.0, le=180.0, description="rotate by a uniform angle in [-d, d] degrees"
    )
    brightness: float = Field(0.0, ge=0.0, le=1.0, description="scale by U[1 - s, 1 + s]")
    contrast: float = Field(
        0.0, ge=0.0, le=1.0, description="stretch about the mean grey by U[1 - s, 1 + s]"
    )
    saturation: float = Field(
        0.0, ge=0.0, le=1.0, description="blend with grey by U[1 - s, 1 + s] (RGB only)"
    )
    cutout: NonNegativeInt = Field(0, description="zero a random square of this side")

    def transforms(self) -> list[Transform]:
        """The per-example transforms that are on, in the order they run."""
        out = []
        if self.crop_padding:
            out.append(random_crop(self.crop_padding))
        if self.hflip:
            out.append(random_hflip())
        if self.rotate_degrees:
            out.append(random_rotation(self.rotate_degrees))
        if self.brightness or self.contrast or self.saturation:
            out.append(color_jitter(self.brightness, self.contrast, self.saturation))
        if self.cutout:
            out.append(random_cutout(self.cutout))
        return out

    @property
    def enabled(self) -> bool:
        return bool(self.transforms())

    def make(self) -> Augment:
        """``(key, x [B, H, W, C], seg [B, H, W] | None) -> (x, seg)``; :func:`identity`
        when everything is off."""
        transforms = self.transforms()
        return batched(chain(*transforms)) if transforms else identity

    def check(self, spec: DataSpec, where: str = "task.augment", seg: str | None = None) -> None:
        """Refuses, before anything is built, augmentation of data that are not images.

        Args:
          spec: the data set's description; its ``x`` must be ``[H, W, C]`` features.
          where: the config path to name in errors.
          seg: a per-pixel map field (``"seg"``) that must be ``[H, W]`` like ``x``.

        Raises:
          FieldError: one line naming ``where`` (or one of its fields) and the problem.
        """
        if not self.enabled:
            return
        problem = IMAGES.unmet(spec)
        if problem is not None:
            raise FieldError(where, f"augmentation {problem}")
        h, w, c = spec.fields["x"].shape
        if self.saturation and c != 3:
            raise FieldError(
                f"{where}.saturation", f"needs RGB images (3 channels); {spec.name} has {c}"
            )
        side = min(h, w)
        if self.crop_padding >= side:
            raise FieldError(
                f"{where}.crop_padding",
                f"must be smaller than the image side; got {self.crop_padding} for {h}x{w} images",
            )
        if self.cutout > side:
            raise FieldError(
                f"{where}.cutout",
                f"must be at most the image side; got {self.cutout} for {h}x{w} images",
            )
        if seg is not None:
            got = spec.fields.get(seg)
            if got is None or got.shape != (h, w):
                have = "none" if got is None else got.describe()
                raise FieldError(
                    where, f"needs {seg} as a per-pixel map [{h}, {w}]; {spec.name} has {have}"
                )
