"""A small CIFAR-style ResNet with batch norm, forward and backward by hand.

The benchmarked network (``STAGES`` = widths 16, 32, 64, one basic block each) on 32x32x3:

    stem:    conv 3x3 -> 16, pad 1, no bias; BN; relu                  [N, 32, 32, 16]
    block s: h = relu(BN(conv3x3_stride(x)));  r = BN(conv3x3(h))
             out = relu(r + shortcut(x)),  shortcut = x, or BN(conv1x1_stride(x)) when the
             width or the resolution changes (projection, "option B")
    head:    global average pool -> dense 10                             [N, 10]

Batch norm runs in training mode (batch statistics over N, H, W), as in a training step:
    xhat = (x - mu) / sqrt(var + eps),   y = gamma xhat + beta
    dx = inv_std / M * (M dxhat - sum(dxhat) - xhat sum(dxhat xhat)),   dxhat = dy gamma
with M = N H W. Convolutions reuse :mod:`benchmarks.numpy_ref.conv` (im2col + one GEMM).
"""

import numpy as np

from benchmarks.numpy_ref.conv import conv2d_backward, conv2d_forward
from benchmarks.numpy_ref.losses import softmax_cross_entropy

STAGES = ((16, 1), (32, 2), (64, 2))  # (width, stride of the block's first conv)
STEM = 16
EPS = 1e-5


def resnet_init(
    rng: np.random.Generator, in_channels: int = 3, classes: int = 10, dtype=np.float32
):
    """Parameters keyed ``stem_W``, ``stem_g``, ``stem_b``, ``s0_c1_W``, ..., ``fc_W``, ``fc_b``."""

    def he(shape):
        fan_in = shape[0] * shape[1] * shape[2]
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)

    def bn(prefix, width):
        return {f"{prefix}_g": np.ones(width, dtype), f"{prefix}_b": np.zeros(width, dtype)}

    p = {"stem_W": he((3, 3, in_channels, STEM)), **bn("stem", STEM)}
    width_in = STEM
    for s, (width, stride) in enumerate(STAGES):
        p[f"s{s}_c1_W"] = he((3, 3, width_in, width))
        p.update(bn(f"s{s}_c1", width))
        p[f"s{s}_c2_W"] = he((3, 3, width, width))
        p.update(bn(f"s{s}_c2", width))
        if stride != 1 or width != width_in:
            p[f"s{s}_proj_W"] = he((1, 1, width_in, width))
            p.update(bn(f"s{s}_proj", width))
        width_in = width
    p["fc_W"] = (rng.standard_normal((width_in, classes)) / np.sqrt(width_in)).astype(dtype)
    p["fc_b"] = np.zeros(classes, dtype)
    return p


def batchnorm_forward(x, gamma, beta):
    """Training-mode batch norm over all axes but the last; returns ``(y, cache)``."""
    mu = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))
    inv_std = 1.0 / np.sqrt(var + EPS)
    xhat = (x - mu) * inv_std
    return gamma * xhat + beta, (xhat, inv_std, gamma)


def batchnorm_backward(dy, cache):
    """``(dx, dgamma, dbeta)`` for :func:`batchnorm_forward`."""
    xhat, inv_std, gamma = cache
    m = dy.shape[0] * dy.shape[1] * dy.shape[2]
    dbeta = dy.sum(axis=(0, 1, 2))
    dgamma = (dy * xhat).sum(axis=(0, 1, 2))
    dxhat = dy * gamma
    dx = (
        inv_std
        / m
        * (m * dxhat - dxhat.sum(axis=(0, 1, 2)) - xhat * (dxhat * xhat).sum(axis=(0, 1, 2)))
    )
    return dx, dgamma, dbeta


def _conv_bn(p, name, x, stride, pad):
    """conv (no bias) then batch norm; the cache holds both layers'."""
    zero_bias = np.zeros(p[f"{name}_W"].shape[-1], x.dtype)
    a, conv_cache = conv2d_forward(x, p[f"{name}_W"], zero_bias, stride=stride, pad=pad)
    y, bn_cache = batchnorm_forward(a, p[f"{name}_g"], p[f"{name}_b"])
    return y, (name, conv_cache, bn_cache)


def _conv_bn_backward(dy, cache, grads):
    name, conv_cache, bn_cache = cache
    da, grads[f"{name}_g"], grads[f"{name}_b"] = batchnorm_backward(dy, bn_cache)
    dx, grads[f"{name}_W"], _ = conv2d_backward(da, conv_cache)
    return dx


def resnet_loss_and_grads(params: dict, x_NxHxWxC: np.ndarray, labels_N: np.ndarray):
    """Mean softmax cross-entropy of the ResNet and its gradients: ``(loss, grads)``."""
    caches = []
    s0, c = _conv_bn(params, "stem", x_NxHxWxC, 1, 1)
    h = np.maximum(s0, 0)
    stem = (c, s0 > 0)
    for s, (_, stride) in enumerate(STAGES):
        a1, c1 = _conv_bn(params, f"s{s}_c1", h, stride, 1)
        h1 = np.maximum(a1, 0)
        a2, c2 = _conv_bn(params, f"s{s}_c2", h1, 1, 1)
        if f"s{s}_proj_W" in params:
            short, cp = _conv_bn(params, f"s{s}_proj", h, stride, 0)
        else:
            short, cp = h, None
        out = a2 + short
        caches.append((c1, a1 > 0, c2, cp, out > 0))
        h = np.maximum(out, 0)
    pooled = h.mean(axis=(1, 2))
    logits = pooled @ params["fc_W"] + params["fc_b"]
    loss, dlogits = softmax_cross_entropy(logits, labels_N)

    grads = {"fc_W": pooled.T @ dlogits, "fc_b": dlogits.sum(axis=0)}
    dpooled = dlogits @ params["fc_W"].T
    dh = np.broadcast_to(dpooled[:, None, None, :] / (h.shape[1] * h.shape[2]), h.shape)
    for c1, relu1, c2, cp, relu_out in reversed(caches):
        dout = dh * relu_out
        dh1 = _conv_bn_backward(dout, c2, grads) * relu1
        dh = _conv_bn_backward(dh1, c1, grads)
        dh = dh + (dout if cp is None else _conv_bn_backward(dout, cp, grads))
    c, relu0 = stem
    _conv_bn_backward(dh * relu0, c, grads)
    return loss, grads
