"""Softmax cross-entropy and the linear read-out shared by the NumPy models."""

import numpy as np


def softmax(z_NxK: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so exp never overflows."""
    e = np.exp(z_NxK - z_NxK.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_cross_entropy(logits_NxK: np.ndarray, labels_N: np.ndarray):
    """Mean cross-entropy of integer labels and its gradient with respect to the logits.

    L = 1/N sum_i [logsumexp(s_i) - s_{i, y_i}],   dL/ds_i = (softmax(s_i) - onehot(y_i)) / N

    Args:
      logits_NxK: scores, ``[N, K]``.
      labels_N: integer class ids, ``[N]``.

    Returns:
      ``(loss, dlogits_NxK)``; the loss is a 0-d array of the logits' dtype.

    Example:
      >>> loss, d = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
      >>> round(float(loss), 4)  # log 4
      1.3863
    """
    n = logits_NxK.shape[0]
    shifted = logits_NxK - logits_NxK.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=-1))
    rows = np.arange(n)
    loss = np.mean(log_z - shifted[rows, labels_N])
    dlogits = np.exp(shifted - log_z[:, None])
    dlogits[rows, labels_N] -= 1.0
    return loss.astype(logits_NxK.dtype), dlogits / n


def readout_cross_entropy(h_BxTxH, Wy_HxV, by_V, targets_BxT):
    """Per-token linear read-out y = h Wy + by followed by mean cross-entropy over B*T tokens.

    Returns:
      ``(loss, dh_BxTxH, dWy_HxV, dby_V)``.
    """
    b, t, h = h_BxTxH.shape
    h_NxH = h_BxTxH.reshape(b * t, h)
    logits_NxV = h_NxH @ Wy_HxV + by_V
    loss, dlogits_NxV = softmax_cross_entropy(logits_NxV, targets_BxT.reshape(b * t))
    dh_BxTxH = (dlogits_NxV @ Wy_HxV.T).reshape(b, t, h)
    return loss, dh_BxTxH, h_NxH.T @ dlogits_NxV, dlogits_NxV.sum(axis=0)
