"""Masked 2-D convolution (van den Oord et al., 2016, "Pixel Recurrent Neural Networks"):
a convolution whose kernel only reaches pixels that come *before* the output pixel in raster
order, so a stack of them models p(x) = prod_t p(x_t | x_<t) with one pass over the image.

With a kernel of odd side ``kh x kw`` centred on (ci, cj) = (kh // 2, kw // 2), the mask is

    M[a, b] = 1  if a < ci                       (rows above the centre)
            = 1  if a = ci and b < cj            (left of the centre, same row)
            = 1  if a = ci and b = cj and kind = "B"
            = 0  otherwise                       (the rest of the centre row, rows below)

and the layer computes y = conv2d(x, W * M) + b ('same' padding, stride 1), so the output at
(i, j) reads x at (i', j') only where (i', j') precedes (i, j) in raster order (type A) or is
(i, j) itself or precedes it (type B). Type A is the first layer: it must not see the pixel it
predicts. Type B follows it: its inputs at (i, j) already summarize only x_<(i,j).

Channels (one channel group): M is the same for every (input, output) channel pair. For grey
images (C = 1) this is exact. For C > 1 the first layer then sees none of pixel (i, j)'s
channels and later layers see all of them, so the C values of a pixel are predicted jointly
from earlier pixels only (independent given them), not one channel after another as in the
paper's R -> G -> B split of the channels into three groups.
"""

from collections.abc import Callable
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlcore.checks import check_choice, check_positive_int, check_rank
from dlcore.layers.conv_math import conv_nd

MASK_KINDS = ("A", "B")
MaskKind = Literal["A", "B"]


def causal_mask(kh: int, kw: int, c_in: int, c_out: int, kind: MaskKind) -> np.ndarray:
    """The kernel mask ``M [kh, kw, c_in, c_out]`` of the module docstring (float32 0/1).

    Args:
      kh, kw: kernel height and width, odd (the centre is the output pixel).
      c_in, c_out: channels (the mask does not depend on them: one channel group).
      kind: ``"A"`` (centre excluded: the first layer) or ``"B"`` (centre included).

    Returns:
      A NumPy array, so it is a constant in every trace.

    Raises:
      ValueError: for an even side, a non-positive size or another kind.

    Example:
      >>> causal_mask(3, 3, 1, 1, "A")[..., 0, 0].astype(int).tolist()
      [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    """
    check_choice(kind, MASK_KINDS, "mask kind")
    for value, name in ((kh, "kh"), (kw, "kw"), (c_in, "c_in"), (c_out, "c_out")):
        check_positive_int(value, f"causal_mask {name}")
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(
            f"a causal mask needs odd kernel sides (the centre is the output pixel); got {kh}x{kw}"
        )
    ci, cj = kh // 2, kw // 2
    m_HxW = np.zeros((kh, kw), np.float32)
    m_HxW[:ci, :] = 1.0
    m_HxW[ci, :cj] = 1.0
    if kind == "B":
        m_HxW[ci, cj] = 1.0
    return np.broadcast_to(m_HxW[:, :, None, None], (kh, kw, c_in, c_out)).copy()


class MaskedConv2D(nn.Module):
    """A stride-1 'same' convolution with a causal mask on ``[B, H, W, C] -> [B, H, W, F]``.

    Owns a kernel ``[KH, KW, C, F]`` and a bias ``[F]``; the mask is not a parameter (it is
    :func:`causal_mask`, applied at every call, so the masked taps get zero gradient and stay
    irrelevant whatever an optimizer does to them).

    Attributes:
      features: output channels F.
      kernel_size: ``k`` or ``(kh, kw)``, odd sides.
      kind: ``"A"`` or ``"B"`` (module docstring).
      use_bias: add a learned bias per output channel.
      kernel_init: initializer of the (unmasked) kernel.
      impl: the convolution lowering (``dlcore.layers.conv.CONV_IMPLS``).
      param_dtype: dtype of kernel and bias.

    Example:
      >>> layer = MaskedConv2D(features=4, kernel_size=3, kind="A")
      >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 8, 8, 1)))
      >>> layer.apply(variables, jnp.ones((2, 8, 8, 1))).shape
      (2, 8, 8, 4)
    """

    features: int
    kernel_size: int | tuple[int, int]
    kind: MaskKind = "B"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    impl: str = "auto"
    param_dtype: jnp.dtype = jnp.float32

    def _sides(self) -> tuple[int, int]:
        k = self.kernel_size
        return (k, k) if isinstance(k, int) else (int(k[0]), int(k[1]))

    def __post_init__(self):
        # Fail at construction, with the config still in view.
        kh, kw = self._sides()
        causal_mask(kh, kw, 1, 1, self.kind)
        check_positive_int(self.features, "masked conv features")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        check_rank(x, 4, "MaskedConv2D input", "[N, H, W, C]")
        kh, kw = self._sides()
        c = x.shape[-1]
        w = self.param("kernel", self.kernel_init, (kh, kw, c, self.features), self.param_dtype)
        b = (
            self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        mask = causal_mask(kh, kw, c, self.features, self.kind)
        return conv_nd(
            x,
            w * mask,
            b,
            stride=1,
            padding="same",
            dilation=1,
            groups=1,
            flip=False,
            impl=self.impl,
            name=self.name or "MaskedConv2D",
        )
