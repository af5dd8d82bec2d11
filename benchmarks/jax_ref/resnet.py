"""The benchmark ResNet of ``numpy_ref.resnet`` in plain JAX (training-mode batch norm)."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.jax_ref.mlp import cross_entropy
from benchmarks.numpy_ref.resnet import EPS, STAGES


def _conv(x_NxHxWxC, W_KxKxCxF, stride: int, pad: int) -> jax.Array:
    return lax.conv_general_dilated(
        x_NxHxWxC,
        W_KxKxCxF,
        window_strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def _conv_bn(p: dict, name: str, x: jax.Array, stride: int, pad: int) -> jax.Array:
    a = _conv(x, p[f"{name}_W"], stride, pad)
    mu = jnp.mean(a, axis=(0, 1, 2), keepdims=True)
    var = jnp.var(a, axis=(0, 1, 2), keepdims=True)
    gamma, beta = p[f"{name}_g"][None, None, None, :], p[f"{name}_b"][None, None, None, :]
    return gamma * (a - mu) * lax.rsqrt(var + EPS) + beta


def resnet_loss(params: dict, x_NxHxWxC: jax.Array, labels_N: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy (parameters as ``numpy_ref.resnet.resnet_init``)."""
    h = jax.nn.relu(_conv_bn(params, "stem", x_NxHxWxC, 1, 1))
    for s, (_, stride) in enumerate(STAGES):
        h1 = jax.nn.relu(_conv_bn(params, f"s{s}_c1", h, stride, 1))
        r = _conv_bn(params, f"s{s}_c2", h1, 1, 1)
        short = _conv_bn(params, f"s{s}_proj", h, stride, 0) if f"s{s}_proj_W" in params else h
        h = jax.nn.relu(r + short)
    logits = jnp.mean(h, axis=(1, 2)) @ params["fc_W"] + params["fc_b"][None, :]
    return cross_entropy(logits, labels_N)
