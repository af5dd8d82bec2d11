"""The sequence layer: any cell over ``[batch, time, features]``, padding-aware.

The module only owns weights (its cell's and an optional learned initial carry); the unroll
is :func:`dlcore.recurrent.scan.scan_cell`, for the plain LSTM the custom-VJP path in
:mod:`dlcore.recurrent.lstm_vjp`, or for the plain LSTM and GRU on CPU oneDNN's fused RNN
primitives (:mod:`dlcore.native.rnn`).
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from dlcore import native
from dlcore.checks import check_choice, check_rank
from dlcore.native.rnn import rnn_sequence
from dlcore.recurrent.cells import Carry, GRUCell, LSTMCell, RecurrentCell
from dlcore.recurrent.lstm_vjp import lstm_scan_vjp
from dlcore.recurrent.scan import lengths_to_mask, reverse_within_lengths, scan_cell

IMPLS = ("auto", "scan", "custom_vjp", "native")
INITIAL_CARRIES = ("zeros", "learned")


def resolve_lengths(
    x_BxTxD: jax.Array, lengths_B: jax.Array | None, mask_BxT: jax.Array | None
) -> jax.Array | None:
    """Checks ``lengths``/``mask`` against the input and returns lengths (or None: all full).

    ``mask`` must be a prefix mask (ones, then zeros); its row sums are the lengths.
    Lengths above T are clipped to T.
    """
    batch, steps = x_BxTxD.shape[:2]
    if lengths_B is not None and mask_BxT is not None:
        raise ValueError("pass either lengths or mask, not both")
    if mask_BxT is not None:
        if mask_BxT.shape != (batch, steps):
            raise ValueError(
                f"mask must be [B, T] = {(batch, steps)} like the inputs; got {mask_BxT.shape}"
            )
        lengths_B = jnp.sum(mask_BxT.astype(jnp.int32), axis=1)
    if lengths_B is None:
        return None
    if lengths_B.shape != (batch,):
        raise ValueError(f"lengths must be [B] = ({batch},); got shape {lengths_B.shape}")
    if not jnp.issubdtype(lengths_B.dtype, jnp.integer):
        raise ValueError(f"lengths must be integers; got dtype {lengths_B.dtype}")
    return jnp.minimum(lengths_B, steps)


class RNN(nn.Module):
    """Runs ``cell`` over every step of ``[B, T, D]`` inputs with one ``lax.scan``.

    The input projection W x_t + b of all T steps is one matmul before the scan; the scan
    does only the recurrent part. With ``lengths`` (or a prefix ``mask``) step t of sequence b
    is valid iff t < L_b: the carry freezes after the end, padded outputs are 0 and padded
    inputs get exactly zero gradient. ``reverse=True`` reads each sequence backwards within
    its own length (padding stays at the end) and returns outputs in the original order.

    Attributes:
      cell: a :class:`RecurrentCell`, e.g. ``LSTMCell(features=128)``.
      reverse: process time backwards (the backward half of a bidirectional layer).
      unroll: steps per scan iteration; keep 1 on CPU unless measured faster.
      remat: recompute step internals in the backward pass to cut BPTT memory.
      initial_carry: "zeros" or "learned" (a trainable [H] vector per carry entry).
      return_carry: return ``(final_carry, outputs)`` instead of ``outputs``.
      return_sequences: outputs are all h_t, ``[B, T, H]``; if False only the last valid
        output (the final h), ``[B, H]``.
      impl: "scan" (autodiff through ``lax.scan``), "custom_vjp" (plain :class:`LSTMCell`
        only; hand-written backward, see :mod:`~dlcore.recurrent.lstm_vjp`), "native"
        (plain :class:`LSTMCell` or :class:`GRUCell`, either reset convention, float32 on
        CPU: oneDNN's fused RNN, see :mod:`dlcore.native.rnn`; no ``remat``, ``h_keep`` or
        ``h_delta``) or "auto": native where it applies and the library is available
        (:func:`dlcore.native.auto_native`), else the custom VJP for a plain LSTM, else scan.

    Example:
      >>> rnn = RNN(LSTMCell(features=16))
      >>> x = jnp.ones((2, 5, 3))
      >>> variables = rnn.init(jax.random.key(0), x, lengths=jnp.array([5, 3]))
      >>> rnn.apply(variables, x, lengths=jnp.array([5, 3])).shape
      (2, 5, 16)
    """

    cell: RecurrentCell
    reverse: bool = False
    unroll: int = 1
    remat: bool = False
    initial_carry: str = "zeros"
    return_carry: bool = False
    return_sequences: bool = True
    impl: str = "auto"

    def __call__(
        self,
        x_BxTxD: jax.Array,
        *,
        lengths: jax.Array | None = None,
        mask: jax.Array | None = None,
        carry: Carry | None = None,
    ):
        """Runs the layer.

        Args:
          x_BxTxD: inputs ``[B, T, D]``.
          lengths: integer ``[B]`` valid lengths, or None when every sequence is full.
          mask: boolean prefix mask ``[B, T]``, an alternative to ``lengths``.
          carry: initial carry (e.g. from the previous truncated-BPTT chunk); defaults to
            the ``initial_carry`` attribute's choice.

        Returns:
          outputs (``[B, T, H]`` or ``[B, H]``), or ``(final_carry, outputs)`` if
          ``return_carry``.
        """
        lengths = resolve_lengths(x_BxTxD, lengths, mask)
        final_carry, y_BxTxH = self.run(x_BxTxD, lengths=lengths, carry=carry)
        outputs = y_BxTxH if self.return_sequences else final_carry["h"]
        return (final_carry, outputs) if self.return_carry else outputs

    @nn.compact  # the learned initial carry's parameters are created here
    def run(
        self,
        x_BxTxD: jax.Array,
        *,
        lengths: jax.Array | None = None,
        carry: Carry | None = None,
        reverse: bool | None = None,
        h_keep: jax.Array | None = None,
        h_delta: jax.Array | None = None,
    ) -> tuple[Carry, jax.Array]:
        """The layer as ``(final_carry, y_BxTxH)`` with every option explicit.

        Args:
          x_BxTxD: inputs ``[B, T, D]``.
          lengths: integer ``[B]`` lengths or None (see :func:`resolve_lengths`).
          carry: initial carry or None.
          reverse: overrides the ``reverse`` attribute when not None.
          h_keep: ``[B, H]`` variational-dropout multiplier on h_{t-1} inside the step.
          h_delta: ``[B, T, H]`` added to each h_t (gradient diagnostics only).
        """
        check_rank(x_BxTxD, 3, "RNN inputs", "[batch, time, features]")
        check_choice(self.impl, IMPLS, "RNN impl")
        check_choice(self.initial_carry, INITIAL_CARRIES, "initial_carry")
        if self.unroll < 1:
            raise ValueError(f"unroll must be a positive int; got {self.unroll}")
        is_lstm = type(self.cell) is LSTMCell
        if self.impl == "custom_vjp" and not is_lstm:
            raise ValueError(
                f"impl='custom_vjp' supports LSTMCell only; got {type(self.cell).__name__} "
                "(use impl='scan' or 'auto')"
            )
        batch, steps, _ = x_BxTxD.shape
        hidden = self.cell.features
        lengths = resolve_lengths(x_BxTxD, lengths, None)
        if h_keep is not None and h_keep.shape != (batch, hidden):
            raise ValueError(f"h_keep must be [B, H] = {(batch, hidden)}; got {h_keep.shape}")
        if h_delta is not None and h_delta.shape != (batch, steps, hidden):
            raise ValueError(f"h_delta must be [B, T, H]; got {h_delta.shape}")
        reverse = self.reverse if reverse is None else reverse
        use_native = self._use_native(x_BxTxD, h_keep, h_delta)

        if reverse:
            x_BxTxD = reverse_within_lengths(x_BxTxD, lengths)
            if h_delta is not None:
                h_delta = reverse_within_lengths(h_delta, lengths)
        if use_native:
            carry, y_TxBxH = self._run_native(x_BxTxD, lengths, carry)
            y_BxTxH = jnp.swapaxes(y_TxBxH, 0, 1)
            return carry, reverse_within_lengths(y_BxTxH, lengths) if reverse else y_BxTxH
        # Project once in time-major order: the [T, B, G*H] result is what scan slices. As a
        # 2-D [T·B, D] matmul its weight gradient is one plain GEMM too.
        x_TBxD = jnp.swapaxes(x_BxTxD, 0, 1).reshape(steps * batch, -1)
        xp_TxBxG = self.cell.project(x_TBxD).reshape(steps, batch, -1)
        # Built even when a carry is given, so that a learned initial carry's parameters exist
        # whichever way the layer was first called.
        default_carry = self._initial_carry(batch, xp_TxBxG.dtype)
        if carry is None:
            carry = default_carry
        else:
            self._check_carry(carry, batch)
            # The scan needs one carry dtype in and out: compute in the projection's dtype.
            carry = jax.tree.map(lambda c: c.astype(xp_TxBxG.dtype), carry)
        mask_TxB = None if lengths is None else lengths_to_mask(lengths, steps).T
        delta_TxBxH = None if h_delta is None else jnp.swapaxes(h_delta, 0, 1)

        # h_delta (diagnostics only) needs the generic scan's hook, whatever impl says.
        use_vjp = h_delta is None and (
            self.impl == "custom_vjp" or (self.impl == "auto" and is_lstm)
        )
        if use_vjp:
            carry, y_TxBxH = lstm_scan_vjp(
                self.cell.recurrent_params()["recurrent_kernel"],
                carry,
                xp_TxBxG,
                mask_TxB=mask_TxB,
                h_keep_BxH=h_keep,
                remat=self.remat,
                unroll=self.unroll,
            )
        else:
            carry, y_TxBxH = scan_cell(
                self.cell.step_fn(),
                self.cell.recurrent_params(),
                carry,
                xp_TxBxG,
                mask_TxB=mask_TxB,
                h_keep_BxH=h_keep,
                h_delta_TxBxH=delta_TxBxH,
                unroll=self.unroll,
                remat=self.remat,
            )
        y_BxTxH = jnp.swapaxes(y_TxBxH, 0, 1)
        if reverse:
            y_BxTxH = reverse_within_lengths(y_BxTxH, lengths)
        return carry, y_BxTxH

    def _native_kernel(self) -> str | None:
        """The oneDNN kernel for this cell ("lstm", "gru", "gru_reset_after") or None."""
        if type(self.cell) is LSTMCell:
            return "lstm"
        if type(self.cell) is GRUCell:
            return "gru_reset_after" if self.cell.reset_after else "gru"
        return None

    def _use_native(self, x_BxTxD, h_keep, h_delta) -> bool:
        """impl='native': True or a one-line ValueError; impl='auto': whether it applies."""
        if self.impl not in ("native", "auto"):
            return False
        unsupported = None
        if self._native_kernel() is None:
            unsupported = f"{type(self.cell).__name__} (only LSTMCell and GRUCell)"
        elif h_keep is not None:
            unsupported = "recurrent dropout (h_keep)"
        elif h_delta is not None:
            unsupported = "h_delta"
        elif self.remat:
            unsupported = "remat=True (oneDNN keeps its own workspace)"
        if self.impl == "auto":
            return unsupported is None and native.auto_native(x_BxTxD)
        if unsupported is not None:
            raise ValueError(
                f"RNN impl='native' does not support {unsupported}; use impl='auto' or 'scan'"
            )
        native.require("RNN impl='native'")
        if x_BxTxD.dtype != jnp.float32:
            raise ValueError(f"RNN impl='native' needs float32 inputs; got {x_BxTxD.dtype}")
        return True

    def _run_native(self, x_BxTxD, lengths, carry) -> tuple[Carry, jax.Array]:
        """oneDNN's fused LSTM/GRU on the raw inputs (it applies W x + b itself)."""
        batch = x_BxTxD.shape[0]
        x_TxBxD = jnp.swapaxes(x_BxTxD, 0, 1)
        kernel_DxGH, bias_GH = self.cell.input_params(x_TxBxD)
        rec = self.cell.recurrent_params()
        default_carry = self._initial_carry(batch, x_TxBxD.dtype)
        if carry is None:
            carry = default_carry
        else:
            self._check_carry(carry, batch)
            carry = jax.tree.map(lambda c: c.astype(x_TxBxD.dtype), carry)
        kernel = self._native_kernel()
        native.record(kernel.removesuffix("_reset_after"))
        return rnn_sequence(
            kernel,
            x_TxBxD,
            carry,
            kernel_DxGH,
            bias_GH,
            rec["recurrent_kernel"],
            rec.get("recurrent_bias"),
            lengths,
        )

    def _initial_carry(self, batch: int, dtype) -> Carry:
        if self.initial_carry == "zeros":
            return self.cell.zero_carry(batch, dtype)
        shape = (self.cell.features,)
        return {
            name: jnp.broadcast_to(
                self.param(f"initial_{name}", nn.initializers.zeros, shape).astype(dtype),
                (batch, self.cell.features),
            )
            for name in self.cell.carry_names
        }

    def _check_carry(self, carry: Carry, batch: int) -> None:
        want = (batch, self.cell.features)
        if not isinstance(carry, dict) or set(carry) != set(self.cell.carry_names):
            raise ValueError(
                f"carry must be a dict with keys {sorted(self.cell.carry_names)}; got "
                f"{sorted(carry) if isinstance(carry, dict) else type(carry).__name__}"
            )
        for name, arr in carry.items():
            if arr.shape != want:
                raise ValueError(f"carry[{name!r}] must be [B, H] = {want}; got {arr.shape}")
