"""Multi-layer perceptron with ReLU hidden layers and softmax cross-entropy, by hand.

Forward, layer l = 0..L-1 (the last one linear):
    a_l = h_{l-1} W_l + b_l,     h_l = relu(a_l),     h_{-1} = x
Backward, with g_L = dL/dlogits from the loss:
    dW_l = h_{l-1}^T g_l,  db_l = sum_rows g_l,  g_{l-1} = (g_l W_l^T) * [a_{l-1} > 0]
Weights are ``[in, out]`` (the layout of a flax ``Dense`` kernel), keys ``W0, b0, W1, ...``.
"""

import numpy as np

from benchmarks.numpy_ref.losses import softmax_cross_entropy


def init_params(rng: np.random.Generator, sizes, dtype=np.float32) -> dict:
    """He-normal weights and zero biases for layer widths ``sizes = (in, h1, ..., out)``.

    Example:
      >>> p = init_params(np.random.default_rng(0), (784, 512, 10))
      >>> p["W0"].shape, p["b1"].shape
      ((784, 512), (10,))
    """
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"W{i}"] = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(dtype)
        params[f"b{i}"] = np.zeros(n_out, dtype)
    return params


def num_layers(params: dict) -> int:
    return sum(1 for k in params if k.startswith("W"))


def forward(params: dict, x_BxD: np.ndarray):
    """Logits ``[B, K]`` and the cache of layer inputs and pre-activations for backward."""
    h = x_BxD.reshape(x_BxD.shape[0], -1)
    inputs, pre = [], []
    n = num_layers(params)
    for i in range(n):
        inputs.append(h)
        a = h @ params[f"W{i}"] + params[f"b{i}"]
        pre.append(a)
        h = np.maximum(a, 0) if i < n - 1 else a
    return h, (params, inputs, pre)


def backward(dlogits_BxK: np.ndarray, cache, input_grad: bool = False):
    """Gradients of every parameter given dL/dlogits.

    Returns:
      ``(grads, dx)``; ``dx`` (dL/dinput, ``[B, D]``) is computed only when ``input_grad``,
      else ``None``, to spare the MLP a matrix product it does not need.
    """
    params, inputs, pre = cache
    grads = {}
    g = dlogits_BxK
    for i in reversed(range(len(inputs))):
        grads[f"W{i}"] = inputs[i].T @ g
        grads[f"b{i}"] = g.sum(axis=0)
        if i > 0:
            g = (g @ params[f"W{i}"].T) * (pre[i - 1] > 0)
    dx = g @ params["W0"].T if input_grad else None
    return grads, dx


def loss_and_grads(params: dict, x_BxD: np.ndarray, labels_B: np.ndarray):
    """Mean softmax cross-entropy of the labels and its gradients: ``(loss, grads)``."""
    logits, cache = forward(params, x_BxD)
    loss, dlogits = softmax_cross_entropy(logits, labels_B)
    return loss, backward(dlogits, cache)[0]
