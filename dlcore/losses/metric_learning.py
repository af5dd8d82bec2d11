"""Distance-based (metric learning) losses on embeddings: contrastive and cosine pairs, and
triplets.

These compare embeddings with each other instead of predictions with targets, so their
arguments are embeddings ``[B, D]`` (and a pair label for the pair losses).
"""

import jax
import jax.numpy as jnp

from dlcore.checks import check_choice, check_rank, check_same_leading_dim, check_same_shape

# squared: ||a - b||^2 (FaceNet, dlcore's default); euclidean: ||a - b + eps||_2, PyTorch's
# pairwise_distance inside TripletMarginLoss.
TRIPLET_DISTANCES = ("squared", "euclidean")


def _squared_distance_B(
    a_BxD: jax.Array, b_BxD: jax.Array, name_b: str, shift: float = 0.0
) -> jax.Array:
    check_rank(a_BxD, 2, "embeddings", "[B, D]")
    check_same_shape(a_BxD, b_BxD, "anchor embeddings", name_b)
    diff_BxD = a_BxD - b_BxD + shift
    return jnp.sum(diff_BxD * diff_BxD, axis=-1)


def _floored_sqrt(d2_B: jax.Array) -> jax.Array:
    # sqrt has an infinite derivative at 0; flooring at the smallest normal number changes
    # no representable distance of interest and keeps gradients finite there.
    return jnp.sqrt(jnp.maximum(d2_B, jnp.finfo(d2_B.dtype).tiny))


def contrastive_loss(
    emb_a_BxD: jax.Array, emb_b_BxD: jax.Array, same_B: jax.Array, margin: float = 1.0
) -> jax.Array:
    """Contrastive pair loss (Hadsell, Chopra & LeCun, 2006).

    L = y d^2 / 2 + (1 - y) max(0, m - d)^2 / 2,   d = ||a - b||,

    with y = 1 for a pair of the same class (pulled together) and y = 0 for a pair of
    different classes (pushed apart until they are at least the margin m apart).

    Args:
      emb_a_BxD, emb_b_BxD: the two embeddings of each pair, ``[B, D]``.
      same_B: 1 for similar pairs, 0 for dissimilar pairs, ``[B]``.
      margin: the distance beyond which dissimilar pairs cost nothing.

    Example:
      >>> a, b = jnp.zeros((2, 2)), jnp.array([[0.0, 0.5], [0.0, 0.5]])
      >>> contrastive_loss(a, b, jnp.array([1.0, 0.0]))
      Array([0.125, 0.125], dtype=float32)
    """
    d2_B = _squared_distance_B(emb_a_BxD, emb_b_BxD, "paired embeddings")
    check_same_leading_dim(emb_a_BxD, same_B, "embeddings", "pair labels")
    if same_B.ndim != 1:
        raise ValueError(f"pair labels must be [B]; got shape {tuple(same_B.shape)}")
    # d = sqrt(d^2) has an infinite derivative at d = 0; flooring d^2 there zeroes the
    # gradient of the (then constant) hinge term instead of producing nan.
    d_B = _floored_sqrt(d2_B)
    y_B = same_B.astype(d2_B.dtype)
    return 0.5 * y_B * d2_B + 0.5 * (1 - y_B) * jnp.maximum(0.0, margin - d_B) ** 2


def triplet_loss(
    anchor_BxD: jax.Array,
    positive_BxD: jax.Array,
    negative_BxD: jax.Array,
    margin: float = 0.2,
    distance: str = "squared",
    eps: float = 1e-6,
) -> jax.Array:
    """Triplet loss (Schroff et al., 2015, FaceNet), on squared Euclidean distances by default.

    squared:   L = max(0, ||a - p||^2 - ||a - n||^2 + m)
    euclidean: L = max(0, d(a, p) - d(a, n) + m),   d(x, y) = ||x - y + eps||_2,

    the second being PyTorch's ``TripletMarginLoss(margin=m, eps=eps)`` (its
    ``pairwise_distance`` adds eps to every component of the difference). The anchor must
    be closer to the positive (same class) than to the negative (other class) by at least
    the margin m.

    Args:
      anchor_BxD, positive_BxD, negative_BxD: embeddings, ``[B, D]``.
      margin: m.
      distance: ``"squared"`` (no eps) or ``"euclidean"``.
      eps: added to each difference component by ``"euclidean"``; unused by ``"squared"``.

    Example:
      >>> a, p, n = jnp.zeros((1, 2)), jnp.ones((1, 2)), 2 * jnp.ones((1, 2))
      >>> triplet_loss(a, p, n, margin=1.0)
      Array([0.], dtype=float32)
    """
    check_choice(distance, TRIPLET_DISTANCES, "triplet distance")
    shift = eps if distance == "euclidean" else 0.0
    d_pos_B = _squared_distance_B(anchor_BxD, positive_BxD, "positive embeddings", shift)
    d_neg_B = _squared_distance_B(anchor_BxD, negative_BxD, "negative embeddings", shift)
    if distance == "euclidean":
        d_pos_B, d_neg_B = _floored_sqrt(d_pos_B), _floored_sqrt(d_neg_B)
    return jnp.maximum(0.0, d_pos_B - d_neg_B + margin)


def cosine_embedding_loss(
    emb_a_BxD: jax.Array,
    emb_b_BxD: jax.Array,
    same_B: jax.Array,
    margin: float = 0.0,
    eps: float = 1e-12,
) -> jax.Array:
    """Cosine embedding loss, PyTorch's ``CosineEmbeddingLoss(margin)``.

    L = 1 - cos(a, b)               for a similar pair (y = 1),
        max(0, cos(a, b) - m)       for a dissimilar pair (y = 0 or -1),

    cos(a, b) = a.b / sqrt((||a||^2 + eps)(||b||^2 + eps)), eps as in PyTorch (1e-12).

    Args:
      emb_a_BxD, emb_b_BxD: the two embeddings of each pair, ``[B, D]``.
      same_B: 1 for similar pairs; 0 or -1 (PyTorch's label) for dissimilar ones, ``[B]``.
      margin: m in [-1, 1]: dissimilar pairs with a cosine below it cost nothing.
      eps: keeps the cosine finite for a zero embedding.

    Example:
      >>> a, b = jnp.array([[1.0, 0.0]] * 2), jnp.array([[0.0, 1.0], [1.0, 1.0]])
      >>> cosine_embedding_loss(a, b, jnp.array([1.0, -1.0]))
      Array([1.        , 0.70710677], dtype=float32)
    """
    check_rank(emb_a_BxD, 2, "embeddings", "[B, D]")
    check_same_shape(emb_a_BxD, emb_b_BxD, "embeddings", "paired embeddings")
    check_same_leading_dim(emb_a_BxD, same_B, "embeddings", "pair labels")
    if same_B.ndim != 1:
        raise ValueError(f"pair labels must be [B]; got shape {tuple(same_B.shape)}")
    dot_B = jnp.sum(emb_a_BxD * emb_b_BxD, axis=-1)
    sq_a_B = jnp.sum(emb_a_BxD * emb_a_BxD, axis=-1) + eps
    sq_b_B = jnp.sum(emb_b_BxD * emb_b_BxD, axis=-1) + eps
    cos_B = dot_B / jnp.sqrt(sq_a_B * sq_b_B)
    return jnp.where(same_B == 1, 1.0 - cos_B, jnp.maximum(0.0, cos_B - margin))
