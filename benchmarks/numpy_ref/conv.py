"""2-D convolution by im2col, max-pooling with arg-max routing, and LeNet-5, by hand.

Layout is NHWC for activations and HWIO (``[KH, KW, C, F]``, as a flax ``Conv`` kernel) for
weights. A convolution is one matrix product once the input patches are laid out as rows:
    cols = im2col(x)            # [N*OH*OW, KH*KW*C]
    y = cols W_mat + b          # W_mat = W.reshape(KH*KW*C, F)
    dW_mat = cols^T dy,  db = sum_rows dy,  dx = col2im(dy W_mat^T)
col2im adds every patch gradient back to the input positions it was read from.
Max-pooling stores the arg-max of every window; its backward sends each output gradient to
that one input position and nothing to the others.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from benchmarks.numpy_ref import mlp
from benchmarks.numpy_ref.losses import softmax_cross_entropy


def _pad(x_NxHxWxC: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return x_NxHxWxC
    return np.pad(x_NxHxWxC, ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def im2col(x_NxHxWxC: np.ndarray, kh: int, kw: int, stride: int = 1, pad: int = 0):
    """Input patches as rows: ``[N*OH*OW, KH*KW*C]`` (row order n, oh, ow; column kh, kw, c)."""
    xp = _pad(x_NxHxWxC, pad)
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    n, oh, ow, c = win.shape[:4]
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * c)
    return cols, (oh, ow)


def col2im(dcols, x_shape, kh: int, kw: int, stride: int, pad: int, oh: int, ow: int):
    """Adjoint of :func:`im2col`: sums patch gradients back into an input-shaped array."""
    n, h, w, c = x_shape
    dcols = dcols.reshape(n, oh, ow, kh, kw, c)
    dxp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, i : i + stride * oh : stride, j : j + stride * ow : stride] += dcols[
                :, :, :, i, j
            ]
    return dxp[:, pad : pad + h, pad : pad + w]


def conv2d_forward(x_NxHxWxC, W_KxKxCxF, b_F, stride: int = 1, pad: int = 0):
    """Cross-correlation ``y[n,i,j,f] = b_f + sum_{a,b,c} x[n, s*i+a, s*j+b, c] W[a,b,c,f]``.

    Returns:
      ``(y_NxOHxOWxF, cache)``.

    Example:
      >>> y, _ = conv2d_forward(np.ones((1, 5, 5, 1)), np.ones((3, 3, 1, 2)), np.zeros(2))
      >>> y.shape, float(y[0, 0, 0, 0])
      ((1, 3, 3, 2), 9.0)
    """
    kh, kw, c, f = W_KxKxCxF.shape
    cols, (oh, ow) = im2col(x_NxHxWxC, kh, kw, stride, pad)
    y = cols @ W_KxKxCxF.reshape(kh * kw * c, f) + b_F
    cache = (x_NxHxWxC.shape, cols, W_KxKxCxF, stride, pad, oh, ow)
    return y.reshape(x_NxHxWxC.shape[0], oh, ow, f), cache


def conv2d_backward(dy_NxOHxOWxF, cache):
    """Returns ``(dx, dW, db)`` for :func:`conv2d_forward`."""
    x_shape, cols, W, stride, pad, oh, ow = cache
    kh, kw, c, f = W.shape
    dy = dy_NxOHxOWxF.reshape(-1, f)
    dW = (cols.T @ dy).reshape(W.shape)
    dx = col2im(dy @ W.reshape(kh * kw * c, f).T, x_shape, kh, kw, stride, pad, oh, ow)
    return dx, dW, dy.sum(axis=0)


def maxpool_forward(x_NxHxWxC: np.ndarray, size: int = 2, stride: int | None = None):
    """Max over ``size x size`` windows; the cache keeps the flat arg-max of every window."""
    stride = size if stride is None else stride
    win = sliding_window_view(x_NxHxWxC, (size, size), axis=(1, 2))[:, ::stride, ::stride]
    n, oh, ow, c = win.shape[:4]
    flat = win.reshape(n, oh, ow, c, size * size)
    arg = flat.argmax(axis=-1)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    return y, (x_NxHxWxC.shape, arg, size, stride)


def maxpool_backward(dy_NxOHxOWxC: np.ndarray, cache) -> np.ndarray:
    """Routes each output gradient to the stored arg-max input position."""
    x_shape, arg, size, stride = cache
    n, oh, ow, c = arg.shape
    ni, oi, oj, ci = np.indices((n, oh, ow, c), sparse=True)
    rows = oi * stride + arg // size
    cols = oj * stride + arg % size
    dx = np.zeros(x_shape, dy_NxOHxOWxC.dtype)
    if stride >= size:  # windows do not overlap: every target position is distinct
        dx[ni, rows, cols, ci] = dy_NxOHxOWxC
    else:
        np.add.at(dx, (ni, rows, cols, ci), dy_NxOHxOWxC)
    return dx


# LeNet-5 (ReLU and max-pool variant) on 28x28x1:
#   conv 5x5 -> 6, pad 2, relu, pool 2 -> [14, 14, 6]
#   conv 5x5 -> 16, relu, pool 2       -> [5, 5, 16] -> flatten (h, w, c) 400
#   dense 120 relu, dense 84 relu, dense 10
LENET_DENSE = (400, 120, 84, 10)


def lenet5_init(rng: np.random.Generator, dtype=np.float32) -> dict:
    """LeNet-5 parameters: ``conv1_W/b``, ``conv2_W/b`` and the dense ``W0, b0, ..., b2``."""

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)

    params = {
        "conv1_W": he((5, 5, 1, 6), 25),
        "conv1_b": np.zeros(6, dtype),
        "conv2_W": he((5, 5, 6, 16), 150),
        "conv2_b": np.zeros(16, dtype),
    }
    params.update(mlp.init_params(rng, LENET_DENSE, dtype))
    return params


def _dense_part(params: dict) -> dict:
    return {k: v for k, v in params.items() if not k.startswith("conv")}


def lenet5_loss_and_grads(params: dict, x_NxHxWx1: np.ndarray, labels_N: np.ndarray):
    """Mean softmax cross-entropy of LeNet-5 and its gradients: ``(loss, grads)``."""
    a1, c1 = conv2d_forward(x_NxHxWx1, params["conv1_W"], params["conv1_b"], pad=2)
    p1, m1 = maxpool_forward(np.maximum(a1, 0))
    a2, c2 = conv2d_forward(p1, params["conv2_W"], params["conv2_b"])
    p2, m2 = maxpool_forward(np.maximum(a2, 0))
    logits, dense_cache = mlp.forward(_dense_part(params), p2.reshape(p2.shape[0], -1))
    loss, dlogits = softmax_cross_entropy(logits, labels_N)

    grads, dflat = mlp.backward(dlogits, dense_cache, input_grad=True)
    dp2 = dflat.reshape(p2.shape)
    da2 = maxpool_backward(dp2, m2) * (a2 > 0)
    dp1, grads["conv2_W"], grads["conv2_b"] = conv2d_backward(da2, c2)
    da1 = maxpool_backward(dp1, m1) * (a1 > 0)
    _, grads["conv1_W"], grads["conv1_b"] = conv2d_backward(da1, c1)
    return loss, grads
