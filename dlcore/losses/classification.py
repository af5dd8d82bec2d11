"""Classification losses on unnormalized scores (logits), one value per example.

All are written to stay finite, with finite gradients, for scores of magnitude 1e4: softmax
and sigmoid terms go through log-sum-exp / softplus forms, hinge losses are piecewise linear,
and the sparsemax loss is evaluated on max-shifted scores (it is shift-invariant).
"""

import jax
import jax.numpy as jnp

from dlcore.checks import check_choice, check_rank, check_same_leading_dim, check_same_shape
from dlcore.losses.reduce import ElementReduction, reduce_elements
from dlcore.sparsemax import shifted_threshold


def _labels_as_one_hot(logits_BxK: jax.Array, labels: jax.Array) -> jax.Array:
    """Integer labels ``[B]`` become one-hot ``[B, K]``; one-hot/soft labels pass through."""
    if labels.ndim == logits_BxK.ndim:
        check_same_shape(logits_BxK, labels, "logits", "one-hot labels")
        return labels.astype(logits_BxK.dtype)
    check_same_leading_dim(logits_BxK, labels, "logits", "labels")
    if labels.ndim != logits_BxK.ndim - 1 or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"labels must be integer class ids of shape {tuple(logits_BxK.shape[:-1])} or "
            f"one-hot of shape {tuple(logits_BxK.shape)}; got {labels.dtype} "
            f"{tuple(labels.shape)}"
        )
    return jax.nn.one_hot(labels, logits_BxK.shape[-1], dtype=logits_BxK.dtype)


# A multi-class hinge loss sums its K - 1 margin violations (Weston & Watkins) or divides
# that sum by K (PyTorch's MultiMarginLoss); see multiclass_hinge.
CLASS_REDUCTIONS = ("sum", "mean")


def softmax_cross_entropy(
    logits_BxK: jax.Array, labels: jax.Array, label_smoothing: float = 0.0
) -> jax.Array:
    """Cross-entropy of the labels under softmax(logits), optionally with label smoothing.

    L_i = -sum_k y'_ik log softmax(s_i)_k,   y'_ik = (1 - eps) y_ik + eps / K,

    which for eps = 0 and one-hot y is logsumexp(s_i) - s_{i, y_i}. The smoothed targets
    are PyTorch's ``CrossEntropyLoss(label_smoothing=eps)`` and optax's
    ``smooth_labels(y, eps)``; Keras's ``label_smoothing`` is the same formula.

    Args:
      logits_BxK: unnormalized scores, ``[B, K]``.
      labels: integer class ids ``[B]`` in ``[0, K)``, or one-hot (or soft) targets ``[B, K]``.
      label_smoothing: eps in [0, 1): the weight moved from the targets to the uniform
        distribution.

    Returns:
      Per-example loss, ``[B]``.

    Example:
      >>> softmax_cross_entropy(jnp.array([[0.0, 0.0]]), jnp.array([1]))
      Array([0.6931472], dtype=float32)
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
    y_BxK = _labels_as_one_hot(logits_BxK, labels)
    if label_smoothing:
        y_BxK = (1.0 - label_smoothing) * y_BxK + label_smoothing / logits_BxK.shape[-1]
    log_probs_BxK = jax.nn.log_softmax(logits_BxK, axis=-1)
    # where() rather than a product: 0 * (-inf) for an impossible class must give 0, not nan.
    return -jnp.sum(jnp.where(y_BxK != 0, y_BxK * log_probs_BxK, 0.0), axis=-1)


def binary_cross_entropy(
    logits_B: jax.Array, labels_B: jax.Array, element_reduction: ElementReduction = "sum"
) -> jax.Array:
    """Binary cross-entropy of labels in [0, 1] under sigmoid(logits).

    l = -y log sigma(s) - (1 - y) log(1 - sigma(s)) = max(s, 0) - s y + log(1 + exp(-|s|))

    The right-hand form never exponentiates a positive number. For multi-label targets
    ``[B, L]`` the per-example loss sums l over the labels (``element_reduction="sum"``) or
    averages it (``"mean"``: with the mean over examples, PyTorch's ``BCEWithLogitsLoss``).

    Example:
      >>> binary_cross_entropy(jnp.array([0.0]), jnp.array([1.0]))
      Array([0.6931472], dtype=float32)
    """
    check_same_shape(logits_B, labels_B, "logits", "labels")
    y = labels_B.astype(logits_B.dtype)
    per_label = jnp.maximum(logits_B, 0) - logits_B * y + jnp.log1p(jnp.exp(-jnp.abs(logits_B)))
    return reduce_elements(per_label, element_reduction)


def multiclass_hinge(
    logits_BxK: jax.Array,
    labels_B: jax.Array,
    margin: float = 1.0,
    class_reduction: str = "sum",
) -> jax.Array:
    """Multi-class hinge loss (Weston & Watkins): L_i = sum_{j != y_i} max(0, s_j - s_y + m).

    With ``class_reduction="mean"`` the sum is divided by K (not K - 1), as PyTorch's
    ``MultiMarginLoss``: L_i = (1/K) sum_{j != y_i} max(0, m - s_y + s_j).

    Args:
      logits_BxK: scores, ``[B, K]``.
      labels_B: integer class ids, ``[B]``.
      margin: the required gap m between the true score and every other score.
      class_reduction: ``"sum"`` (the default) or ``"mean"`` (divide by K).

    Example:
      >>> multiclass_hinge(jnp.array([[3.0, 2.5, 0.0]]), jnp.array([0]))
      Array([0.5], dtype=float32)
    """
    check_rank(logits_BxK, 2, "logits", "[B, K]")
    y_BxK = _labels_as_one_hot(logits_BxK, labels_B)
    true_score_Bx1 = jnp.sum(logits_BxK * y_BxK, axis=-1, keepdims=True)
    check_choice(class_reduction, CLASS_REDUCTIONS, "class_reduction")
    violations_BxK = jnp.maximum(0.0, logits_BxK - true_score_Bx1 + margin)
    total_B = jnp.sum(jnp.where(y_BxK > 0, 0.0, violations_BxK), axis=-1)
    return total_B / logits_BxK.shape[-1] if class_reduction == "mean" else total_B


def binary_hinge(
    scores_B: jax.Array, labels_B: jax.Array, element_reduction: ElementReduction = "sum"
) -> jax.Array:
    """Binary hinge loss for labels in {-1, +1}: L = max(0, 1 - y s).

    Extra non-batch axes (several binary outputs per example) are summed, or averaged with
    ``element_reduction="mean"``.

    Example:
      >>> binary_hinge(jnp.array([0.5, 2.0]), jnp.array([1.0, -1.0]))
      Array([0.5, 3. ], dtype=float32)
    """
    check_same_shape(scores_B, labels_B, "scores", "labels")
    per_output = jnp.maximum(0.0, 1.0 - labels_B.astype(scores_B.dtype) * scores_B)
    return reduce_elements(per_output, element_reduction)


@jax.custom_jvp
def _sparsemax_loss(z_BxK: jax.Array, y_BxK: jax.Array) -> jax.Array:
    # Shift invariance (tau moves with z, and both the support's excess and the target sum
    # to 1) lets us use max-shifted scores, whose support entries lie in (-1, 0]: no
    # 1e8-sized squares cancel. The last term is 1/2 ||q||^2 (1/2 for a one-hot target).
    z_shift, tau_shift, _ = shifted_threshold(z_BxK)
    on_support = z_shift > tau_shift
    half_gap = 0.5 * jnp.where(on_support, z_shift * z_shift - tau_shift * tau_shift, 0.0)
    half_norm = 0.5 * jnp.sum(y_BxK * y_BxK, axis=-1)
    return -jnp.sum(z_shift * y_BxK, axis=-1) + jnp.sum(half_gap, axis=-1) + half_norm


@_sparsemax_loss.defjvp
def _sparsemax_loss_jvp(primals, tangents):
    (z_BxK, y_BxK), (z_dot, y_dot) = primals, tangents
    z_shift, tau_shift, _ = shifted_threshold(z_BxK)
    p_BxK = jnp.maximum(z_shift - tau_shift, 0.0)
    # dL/dz = sparsemax(z) - y (Martins & Astudillo, Prop. 3); dL/dy = y - (z - max z), the
    # max shift dropping out along targets that stay on the simplex.
    tangent = jnp.sum((p_BxK - y_BxK) * z_dot, axis=-1) + jnp.sum(
        (y_BxK - z_shift) * y_dot, axis=-1
    )
    return _sparsemax_loss(z_BxK, y_BxK), tangent


def sparsemax_loss(logits_BxK: jax.Array, labels: jax.Array) -> jax.Array:
    """Sparsemax loss (Martins & Astudillo, 2016), the natural loss for a sparsemax output.

    L(z, y) = -z_y + 1/2 sum_{j in S(z)} (z_j^2 - tau(z)^2) + 1/2,
    dL/dz = sparsemax(z) - e_y.

    It is >= 0, and zero exactly when sparsemax(z) = e_y. A target distribution q on the
    simplex (soft labels; a label set's q = 1_Y / |Y|, see
    :func:`dlcore.losses.multilabel_sparsemax_loss`) replaces e_y:
    L(z, q) = -z.q + 1/2 sum_{j in S(z)} (z_j^2 - tau(z)^2) + 1/2 ||q||^2.

    Args:
      logits_BxK: scores, ``[B, K]``.
      labels: integer class ids ``[B]``, or one-hot or target distributions ``[B, K]``.

    Example:
      >>> sparsemax_loss(jnp.array([[3.0, 0.0]]), jnp.array([0]))
      Array([0.], dtype=float32)
    """
    check_rank(logits_BxK, 2, "logits", "[B, K]")
    return _sparsemax_loss(logits_BxK, _labels_as_one_hot(logits_BxK, labels))


def zero_one_loss(logits_BxK: jax.Array, labels_B: jax.Array) -> jax.Array:
    """1 where the arg-max class differs from the label, else 0 (a metric: no useful gradient).

    Example:
      >>> zero_one_loss(jnp.array([[0.1, 0.9], [0.8, 0.2]]), jnp.array([1, 1]))
      Array([0., 1.], dtype=float32)
    """
    check_same_leading_dim(logits_BxK, labels_B, "logits", "labels")
    return (jnp.argmax(logits_BxK, axis=-1) != labels_B).astype(jnp.float32)
