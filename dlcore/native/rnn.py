"""LSTM and GRU sequences on oneDNN's fused RNN primitives (``csrc/rnn.cc``), as jax functions.

:func:`rnn_sequence` runs one unidirectional layer over time-major inputs with the same
equations, gate packing and parameters as dlcore's cells (:mod:`dlcore.recurrent.cells`):

    LSTM ([i, f, g, o]):  c_t = σ(a_f) ⊙ c_{t-1} + σ(a_i) ⊙ tanh(a_g),  h_t = σ(a_o) ⊙ tanh(c_t)
    GRU ([z, r, n]):      h_t = z ⊙ h_{t-1} + (1 − z) ⊙ n
                          n = tanh(W_n x_t + b_n + U_n (r ⊙ h_{t-1}))          (reset before)
                          n = tanh(W_n x_t + b_n + r ⊙ (U_n h_{t-1} + b_hn))   (reset after)

with a = W x_t + b + U h_{t-1}. Differentiated, the forward pass keeps oneDNN's workspace
(gates and states) for the backward pass, a ``jax.custom_vjp``; otherwise oneDNN's inference
forward runs. All are XLA FFI calls, so they work under ``jit``, ``grad``, ``vmap`` (one call
per vmapped member, e.g. per population member) and inside ``lax.scan``.

Variable lengths are exact although the primitive has none. Padded steps (t ≥ L_b) get
zero inputs plus one extra input feature p_t = 1 whose constant weight row saturates the
gates: for the LSTM a_f += BIG and a_i −= BIG, so σ(a_f) = 1, σ(a_i) = 0 in float32 and

    c_t = 1 ⊙ c_{t-1} + 0 ⊙ g = c_{t-1}     (c is carried exactly; h_T is read at L_b − 1)

for the GRU z = σ(a_z + BIG) = 1, so h_t = h_{t-1} exactly. Saturated gates have zero
derivative (σ(1 − σ) = 0), so in the backward pass every padded step has δ_t = 0 exactly and
passes (∂c, ∂h) through unchanged; outputs at padded steps are masked to 0 (``jnp.where``
routes no cotangent into them) and padded inputs get exactly zero gradient.
"""

import ctypes
import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.native import loader

KINDS = {"lstm": 0, "gru": 1, "gru_reset_after": 2}
TARGETS = ("dlcore_rnn_forward", "dlcore_rnn_backward")
# exp(−1e4) underflows to 0 in float32, so σ(+BIG) is exactly 1 and σ(−BIG) exactly 0, with
# margin enough that no realistic x W + h U + b moves a padded gate off saturation.
BIG = 1e4


@functools.cache
def workspace_bytes(kind: int, steps: int, batch: int, inputs: int, hidden: int) -> int:
    """Bytes of oneDNN's training workspace for one call (builds the primitives once)."""
    fn = loader.library().dlcore_rnn_workspace_bytes
    fn.restype = ctypes.c_int64
    fn.argtypes = [ctypes.c_int64] * 5
    size = fn(kind, steps, batch, inputs, hidden)
    if size < 0:
        raise ValueError(
            f"oneDNN rejected the RNN shape T={steps}, B={batch}, D={inputs}, H={hidden}"
        )
    return size


def _forward_call(kind, training, x, h0, c0, w, u, b):
    steps, batch, inputs = x.shape
    hidden = h0.shape[-1]
    ws = workspace_bytes(kind, steps, batch, inputs, hidden) if training else 0
    out = (
        jax.ShapeDtypeStruct((steps, batch, hidden), x.dtype),
        jax.ShapeDtypeStruct(h0.shape, x.dtype),
        jax.ShapeDtypeStruct(c0.shape, x.dtype),
        jax.ShapeDtypeStruct((ws,), jnp.uint8),
    )
    # "sequential": a vmapped call (population training) loops over the batch axis, each
    # member with its own weights; oneDNN has no batched-weights RNN.
    call = jax.ffi.ffi_call("dlcore_rnn_forward", out, vmap_method="sequential")
    return call(x, h0, c0, w, u, b, kind=np.int64(kind), training=np.int64(training))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _sequence(kind, x, h0, c0, w, u, b):
    # Not differentiated (evaluation, generation): oneDNN's inference forward, no workspace.
    y, h_last, c_last, _ = _forward_call(kind, False, x, h0, c0, w, u, b)
    return y, h_last, c_last


def _sequence_fwd(kind, x, h0, c0, w, u, b):
    y, h_last, c_last, ws = _forward_call(kind, True, x, h0, c0, w, u, b)
    return (y, h_last, c_last), (x, h0, c0, w, u, b, y, h_last, c_last, ws)


def _sequence_bwd(kind, res, cotangents):
    x, h0, c0, w, u, b = res[:6]
    dy, dh_last, dc_last = cotangents
    out = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (x, h0, c0, w, u, b))
    call = jax.ffi.ffi_call("dlcore_rnn_backward", out, vmap_method="sequential")
    return call(*res, dy, dh_last, dc_last, kind=np.int64(kind))


_sequence.defvjp(_sequence_fwd, _sequence_bwd)


def _saturating_row(kind: int, hidden: int, dtype) -> jax.Array:
    """The padding feature's weights ``[G*H]``: forget +BIG / input −BIG (LSTM), z +BIG (GRU)."""
    blocks = [0.0] * (4 if kind == KINDS["lstm"] else 3)
    if kind == KINDS["lstm"]:
        blocks[0], blocks[1] = -BIG, BIG  # [i, f, g, o]
    else:
        blocks[0] = BIG  # [z, r, n]
    return jnp.repeat(jnp.asarray(blocks, dtype), hidden)


def rnn_sequence(
    cell: str,
    x_TxBxD: jax.Array,
    carry: dict[str, jax.Array],
    kernel_DxGH: jax.Array,
    bias_GH: jax.Array,
    recurrent_kernel_HxGH: jax.Array,
    recurrent_bias_H: jax.Array | None = None,
    lengths_B: jax.Array | None = None,
) -> tuple[dict[str, jax.Array], jax.Array]:
    """One LSTM/GRU layer over ``[T, B, D]`` inputs with oneDNN; see the module docstring.

    Args:
      cell: "lstm", "gru" (reset before) or "gru_reset_after".
      x_TxBxD: raw (unprojected) inputs, time-major, float32.
      carry: ``{"c", "h"}`` (LSTM) or ``{"h"}`` (GRU), each ``[B, H]``.
      kernel_DxGH, bias_GH: the input projection W, b (the cell's ``input`` Dense).
      recurrent_kernel_HxGH: U, gates packed as in the cell.
      recurrent_bias_H: b_hn, only for "gru_reset_after".
      lengths_B: integer valid lengths (each ≤ T), or None when every sequence is full.

    Returns:
      ``(final_carry, y_TxBxH)``: the carry after each sequence's last valid step, outputs
      0 at padded steps.

    Example:
      >>> h = jnp.zeros((2, 4))
      >>> w, u = jnp.ones((3, 16)), jnp.ones((4, 16))
      >>> rnn_sequence("lstm", jnp.ones((5, 2, 3)), {"c": h, "h": h}, w, jnp.zeros(16), u)[1].shape
      (5, 2, 4)
    """
    kind = KINDS[cell]
    loader.ensure_targets(TARGETS)
    steps, batch, _ = x_TxBxD.shape
    hidden = recurrent_kernel_HxGH.shape[0]
    dtype = x_TxBxD.dtype
    b = bias_GH if recurrent_bias_H is None else jnp.concatenate([bias_GH, recurrent_bias_H])
    h0 = carry["h"]
    c0 = carry["c"] if kind == KINDS["lstm"] else jnp.zeros((0,), dtype)
    if lengths_B is None:
        y, h_last, c_last = _sequence(kind, x_TxBxD, h0, c0, kernel_DxGH, recurrent_kernel_HxGH, b)
        return _carry(kind, h_last, c_last), y
    valid_TxB = jnp.arange(steps)[:, None] < lengths_B[None, :]
    x_TxBxD = jnp.where(valid_TxB[..., None], x_TxBxD, jnp.zeros((), dtype))
    pad_TxBx1 = (~valid_TxB)[..., None].astype(dtype)
    x_ext = jnp.concatenate([x_TxBxD, pad_TxBx1], axis=-1)
    row = jax.lax.stop_gradient(_saturating_row(kind, hidden, dtype))
    w_ext = jnp.concatenate([kernel_DxGH, row[None, :]], axis=0)
    y, h_last, c_last = _sequence(kind, x_ext, h0, c0, w_ext, recurrent_kernel_HxGH, b)
    y = jnp.where(valid_TxB[..., None], y, jnp.zeros((), dtype))
    if kind == KINDS["lstm"]:
        # h is not carried through the padding (the output gate still moves), c is: read h
        # at the last valid step; an empty sequence keeps its initial h.
        last_B = jnp.clip(lengths_B - 1, 0, steps - 1)
        h_at_last = jnp.take_along_axis(y, last_B[None, :, None], axis=0)[0]
        h_last = jnp.where((lengths_B > 0)[:, None], h_at_last, h0)
    return _carry(kind, h_last, c_last), y


def _carry(kind: int, h_BxH: jax.Array, c_BxH: jax.Array) -> dict[str, jax.Array]:
    return {"c": c_BxH, "h": h_BxH} if kind == KINDS["lstm"] else {"h": h_BxH}
