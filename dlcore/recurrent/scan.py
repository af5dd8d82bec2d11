"""The unroll over time as a pure function: ``lax.scan`` of a cell step, with padding.

Everything here is time-major (``[T, B, ...]``) because ``lax.scan`` slices the leading axis;
the sequence layer transposes once at its boundary. Also holds the per-sequence reversal
used for backward-direction layers on padded batches.
"""

import jax
import jax.numpy as jnp

from dlcore.recurrent.cells import Carry, Step


def scan_cell(
    step: Step,
    rec: dict[str, jax.Array],
    carry: Carry,
    xp_TxBxG: jax.Array,
    *,
    mask_TxB: jax.Array | None = None,
    h_keep_BxH: jax.Array | None = None,
    h_delta_TxBxH: jax.Array | None = None,
    unroll: int = 1,
    remat: bool = False,
) -> tuple[Carry, jax.Array]:
    """Runs ``step`` over T pre-projected inputs; BPTT is autodiff through the scan.

    At each t, (c̃, h̃) = step(c_{t-1}, h_{t-1}, xp_t) and, with the validity mask m_t,

        carry_t = m_t ? carrỹ_t : carry_{t-1}       (the carry freezes after a sequence ends)
        y_t     = m_t ? h̃_t : 0                    (padded outputs are exactly zero)

    ``jnp.where`` routes no cotangent into an unselected branch, so padded steps get exactly
    zero gradient.

    Args:
      step: pure cell step ``(rec, carry, xp_BxG, h_keep_BxH) -> (carry, h_BxH)``.
      rec: the cell's recurrent parameters (closed over, shared by all steps).
      carry: initial carry, a dict of ``[B, H]`` arrays.
      xp_TxBxG: input projections ``W x_t + b`` for every step, ``[T, B, G*H]``.
      mask_TxB: boolean validity of each step, or None for all valid.
      h_keep_BxH: variational-dropout multiplier on h_{t-1} inside the step, or None.
      h_delta_TxBxH: added to each h_t before it is emitted and carried; zeros of this are
        what :func:`dlcore.recurrent.diagnostics.hidden_grad_norms` differentiates.
      unroll: steps per scan iteration (``lax.scan``'s ``unroll``).
      remat: recompute each step's internals in the backward pass (``jax.checkpoint``)
        instead of storing them: activation memory falls from O(T·G·H) to O(T·H) per example.

    Returns:
      ``(final_carry, y_TxBxH)``.
    """

    def body(carry_prev: Carry, inputs) -> tuple[Carry, jax.Array]:
        xp_BxG, m_B, delta_BxH = inputs
        carry_new, y_BxH = step(rec, carry_prev, xp_BxG, h_keep_BxH)
        if delta_BxH is not None:
            y_BxH = y_BxH + delta_BxH
            carry_new = {**carry_new, "h": y_BxH}
        if m_B is not None:
            m_Bx1 = m_B[:, None]
            carry_new = jax.tree.map(lambda n, o: jnp.where(m_Bx1, n, o), carry_new, carry_prev)
            y_BxH = jnp.where(m_Bx1, y_BxH, jnp.zeros_like(y_BxH))
        return carry_new, y_BxH

    if remat:
        body = jax.checkpoint(body)
    return jax.lax.scan(body, carry, (xp_TxBxG, mask_TxB, h_delta_TxBxH), unroll=unroll)


def lengths_to_mask(lengths_B: jax.Array, steps: int) -> jax.Array:
    """Boolean ``[B, T]`` validity: m[b, t] = t < lengths[b]."""
    return jnp.arange(steps)[None, :] < lengths_B[:, None]


def reverse_within_lengths(x_BxTx: jax.Array, lengths_B: jax.Array | None) -> jax.Array:
    """Reverses each sequence within its own length; padding stays where it is.

        out[b, t] = x[b, L_b − 1 − t]  for t < L_b,   out[b, t] = x[b, t]  otherwise

    Flipping the whole padded array instead would put the padding first, so a backward
    layer would start from padding (the flax#2170 bug). The map is its own inverse.

    Example:
      >>> reverse_within_lengths(jnp.arange(4)[None], jnp.array([3]))
      Array([[2, 1, 0, 3]], dtype=int32)
    """
    steps = x_BxTx.shape[1]
    if lengths_B is None:
        return jnp.flip(x_BxTx, axis=1)
    t_1xT = jnp.arange(steps)[None, :]
    l_Bx1 = lengths_B[:, None]
    src_BxT = jnp.where(t_1xT < l_Bx1, l_Bx1 - 1 - t_1xT, t_1xT)
    src = src_BxT.reshape(src_BxT.shape + (1,) * (x_BxTx.ndim - 2))
    return jnp.take_along_axis(x_BxTx, src, axis=1)
