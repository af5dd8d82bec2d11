"""LeNet-5 (ReLU, max-pool) in plain JAX with lax convolutions, NHWC/HWIO like numpy_ref.conv."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.jax_ref import mlp


def conv2d(x_NxHxWxC, W_KxKxCxF, b_F, stride: int = 1, pad: int = 0) -> jax.Array:
    """Cross-correlation with symmetric zero padding ``pad``."""
    y = lax.conv_general_dilated(
        x_NxHxWxC,
        W_KxKxCxF,
        window_strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + b_F[None, None, None, :]


def maxpool(x_NxHxWxC: jax.Array, size: int = 2, stride: int | None = None) -> jax.Array:
    """Max over ``size x size`` windows."""
    stride = size if stride is None else stride
    return lax.reduce_window(
        x_NxHxWxC, -jnp.inf, lax.max, (1, size, size, 1), (1, stride, stride, 1), "VALID"
    )


def lenet5_loss(params: dict, x_NxHxWx1: jax.Array, labels_N: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of LeNet-5 (parameters as ``numpy_ref.conv.lenet5_init``)."""
    h = maxpool(jax.nn.relu(conv2d(x_NxHxWx1, params["conv1_W"], params["conv1_b"], pad=2)))
    h = maxpool(jax.nn.relu(conv2d(h, params["conv2_W"], params["conv2_b"])))
    dense = {k: v for k, v in params.items() if not k.startswith("conv")}
    return mlp.loss(dense, h.reshape(h.shape[0], -1), labels_N)
