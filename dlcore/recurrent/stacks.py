"""Stacks of sequence layers: bidirectional pairs and deep RNNs with (variational) dropout."""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.core import FrozenDict

from dlcore.checks import check_choice
from dlcore.recurrent.cells import Carry, make_cell
from dlcore.recurrent.sequence import RNN, resolve_lengths

MERGES = ("concat", "sum")


def merge_directions(fwd_BxTxH: jax.Array, bwd_BxTxH: jax.Array, merge: str) -> jax.Array:
    """Combines the two directions' outputs: ``[h→; h←]`` (2H features) or ``h→ + h←`` (H)."""
    check_choice(merge, MERGES, "merge")
    if merge == "concat":
        return jnp.concatenate([fwd_BxTxH, bwd_BxTxH], axis=-1)
    return fwd_BxTxH + bwd_BxTxH


class Bidirectional(nn.Module):
    """A forward and a backward :class:`RNN` over the same inputs, outputs merged per step.

        y_t = merge(h→_t, h←_t),   h← reads each sequence from its own last valid step

    The backward layer runs with ``reverse=True`` whatever its attribute says; with lengths,
    it starts at step L_b − 1 of sequence b, never in the padding. Its carry is the pair
    ``(forward carry, backward carry)``: the final forward carry is the state after step
    L_b − 1 (it freezes in the padding), the final backward carry the state after reading
    step 0, i.e. after the whole sequence in both cases.

    Attributes:
      forward_rnn: layer reading t = 0, 1, ...
      backward_rnn: layer reading t = L − 1, L − 2, ...
      merge: "concat" or "sum".

    Example:
      >>> bi = Bidirectional(RNN(GRUCell(4)), RNN(GRUCell(4)))
      >>> x = jnp.ones((2, 5, 3))
      >>> variables = bi.init(jax.random.key(0), x)
      >>> bi.apply(variables, x, lengths=jnp.array([5, 2])).shape
      (2, 5, 8)
      >>> (fwd, bwd), y = bi.apply(variables, x, return_carry=True)
      >>> fwd["h"].shape, bwd["h"].shape
      ((2, 4), (2, 4))
    """

    forward_rnn: RNN
    backward_rnn: RNN
    merge: str = "concat"

    def __call__(
        self,
        x_BxTxD: jax.Array,
        *,
        lengths: jax.Array | None = None,
        mask: jax.Array | None = None,
        h_keep: tuple[jax.Array | None, jax.Array | None] = (None, None),
        carry: tuple[Carry | None, Carry | None] | None = None,
        return_carry: bool = False,
    ):
        """Runs both directions.

        Args:
          x_BxTxD: inputs ``[B, T, D]``.
          lengths, mask: valid lengths ``[B]`` or a prefix mask ``[B, T]``; see :class:`RNN`.
          h_keep: per-direction variational-dropout multipliers on h_{t-1}, or None.
          carry: initial ``(forward, backward)`` carries (either may be None: the layer's
            default), or None for both defaults.
          return_carry: also return the final ``(forward, backward)`` carries.

        Returns:
          merged outputs ``[B, T, 2H]`` (concat) or ``[B, T, H]`` (sum), or
          ``((fwd_carry, bwd_carry), outputs)`` with ``return_carry``.
        """
        check_choice(self.merge, MERGES, "merge")
        carry_fwd, carry_bwd = _carry_pair(carry, "Bidirectional carry")
        lengths = resolve_lengths(x_BxTxD, lengths, mask)
        final_fwd, fwd = self.forward_rnn.run(
            x_BxTxD, lengths=lengths, reverse=False, h_keep=h_keep[0], carry=carry_fwd
        )
        final_bwd, bwd = self.backward_rnn.run(
            x_BxTxD, lengths=lengths, reverse=True, h_keep=h_keep[1], carry=carry_bwd
        )
        y = merge_directions(fwd, bwd, self.merge)
        return ((final_fwd, final_bwd), y) if return_carry else y


def _carry_pair(carry, what: str) -> tuple[Carry | None, Carry | None]:
    """``(forward, backward)`` from a bidirectional carry, or ``(None, None)`` for None."""
    if carry is None:
        return None, None
    if not isinstance(carry, tuple | list) or len(carry) != 2:
        raise ValueError(
            f"{what} must be a (forward carry, backward carry) pair; got {type(carry).__name__}"
            + (f" of length {len(carry)}" if isinstance(carry, tuple | list) else "")
        )
    return carry[0], carry[1]


class StackedRNN(nn.Module):
    """N recurrent layers, each reading the previous layer's outputs.

    Dropout acts between layers only, never on the recurrent connection, unless
    ``variational``: then one mask per sequence, shared by all time steps, drops each
    layer's inputs (rate ``dropout``, first layer included) and the recurrent state h_{t-1}
    where it enters the recurrent matmul (rate ``recurrent_dropout``), as in Gal &
    Ghahramani (2016). Masks come from the "dropout" rng stream; nothing is dropped when
    ``train=False``.

    Attributes:
      features: hidden size H of every layer (per direction).
      num_layers: number of stacked layers.
      cell: name in ``CELLS`` ("lstm", "gru", "rnn_tanh", ...).
      cell_kwargs: extra cell fields, e.g. ``{"recurrent_init": "identity"}``.
      bidirectional: make each layer a :class:`Bidirectional` pair.
      merge: "concat" or "sum" for bidirectional layers.
      dropout: drop rate between layers (and on layer 0's input if ``variational``).
      recurrent_dropout: drop rate on h_{t-1}; requires ``variational=True``.
      variational: share each dropout mask across time.
      unroll, remat, impl: passed to every :class:`RNN`.

    Carries (``carry=`` and ``return_carry``) are lists with one entry per layer: the cell's
    carry dict for a unidirectional stack, the pair ``(forward carry, backward carry)`` for
    a bidirectional one (see :class:`Bidirectional`; the final pair holds each direction's
    state after reading the whole sequence). Handing a bidirectional carry to the next
    truncated-BPTT chunk is not streaming: the backward direction reads each chunk from its end.

    Example:
      >>> net = StackedRNN(features=8, num_layers=2, dropout=0.2)
      >>> x = jnp.ones((2, 5, 3))
      >>> variables = net.init(jax.random.key(0), x, train=False)
      >>> net.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)}).shape
      (2, 5, 8)
    """

    features: int
    num_layers: int = 1
    cell: str = "lstm"
    cell_kwargs: Mapping[str, Any] = FrozenDict()
    bidirectional: bool = False
    merge: str = "concat"
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    variational: bool = False
    unroll: int = 1
    remat: bool = False
    impl: str = "auto"

    def _check(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1; got {self.num_layers}")
        for name in ("dropout", "recurrent_dropout"):
            rate = getattr(self, name)
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {rate}")
        if self.recurrent_dropout > 0 and not self.variational:
            raise ValueError(
                "recurrent_dropout needs variational=True (a fresh mask every step would "
                "wreck the recurrent memory); got variational=False"
            )
        check_choice(self.merge, MERGES, "merge")

    def _rnn(self, name: str | None) -> RNN:
        # parent=None: the cell belongs to its RNN and a bidirectional pair's RNNs to the
        # pair, not to this module (where construction inside a compact method puts them).
        cell = make_cell(self.cell, self.features, parent=None, **dict(self.cell_kwargs))
        rnn = RNN(cell, unroll=self.unroll, remat=self.remat, impl=self.impl, parent=None)
        return rnn if name is None else rnn.clone(parent=self, name=name)

    def zero_carry(self, batch: int, dtype=jnp.float32) -> list:
        """All-zero per-layer carries: the state a truncated-BPTT run starts from, e.g.
        ``TrainState(..., extra={"carry": net.zero_carry(batch)})``; a ``(forward,
        backward)`` pair per layer when bidirectional. Needs no parameters: call it on the
        unbound module."""
        cell = make_cell(self.cell, self.features, parent=None, **dict(self.cell_kwargs))
        if self.bidirectional:
            return [
                (cell.zero_carry(batch, dtype), cell.zero_carry(batch, dtype))
                for _ in range(self.num_layers)
            ]
        return [cell.zero_carry(batch, dtype) for _ in range(self.num_layers)]

    def _keep_mask(self, batch: int, train: bool) -> jax.Array | None:
        """A [B, H] inverted-dropout multiplier for h_{t-1}, fixed over the sequence."""
        if not (train and self.recurrent_dropout > 0):
            return None
        keep = 1.0 - self.recurrent_dropout
        bits = jax.random.bernoulli(self.make_rng("dropout"), keep, (batch, self.features))
        h_keep_BxH = bits.astype(jnp.float32) / keep
        self.sow("intermediates", "h_keep", h_keep_BxH)  # lets tests and users inspect masks
        return h_keep_BxH

    @nn.compact
    def __call__(
        self,
        x_BxTxD: jax.Array,
        *,
        train: bool,
        lengths: jax.Array | None = None,
        mask: jax.Array | None = None,
        carry: list | None = None,
        return_carry: bool = False,
    ):
        """Runs the stack.

        Args:
          x_BxTxD: inputs ``[B, T, D]``.
          train: enables dropout (needs a "dropout" rng).
          lengths, mask: valid lengths ``[B]`` or a prefix mask ``[B, T]``; see :class:`RNN`.
          carry: per-layer initial carries, e.g. carried across truncated-BPTT chunks;
            ``(forward, backward)`` pairs when bidirectional.
          return_carry: also return the per-layer final carries (pairs when bidirectional).

        Returns:
          the last layer's outputs ``[B, T, H]`` (``2H`` for concat-merged bidirectional), or
          ``(carries, outputs)`` with ``return_carry``.
        """
        self._check()
        lengths = resolve_lengths(x_BxTxD, lengths, mask)
        if carry is not None and len(carry) != self.num_layers:
            raise ValueError(f"carry must hold {self.num_layers} layer carries; got {len(carry)}")
        batch = x_BxTxD.shape[0]
        h_BxTxD = x_BxTxD
        finals = []
        for layer in range(self.num_layers):
            if self.variational and self.dropout > 0:
                h_BxTxD = nn.Dropout(self.dropout, broadcast_dims=(1,), deterministic=not train)(
                    h_BxTxD
                )
            elif layer > 0 and self.dropout > 0:
                h_BxTxD = nn.Dropout(self.dropout, deterministic=not train)(h_BxTxD)
            if self.bidirectional:
                pair = Bidirectional(
                    self._rnn(None), self._rnn(None), self.merge, name=f"layer{layer}"
                )
                keeps = (self._keep_mask(batch, train), self._keep_mask(batch, train))
                layer_carry = None
                if carry is not None:
                    what = f"carry[{layer}] of a bidirectional stack"
                    layer_carry = _carry_pair(carry[layer], what)
                final, h_BxTxD = pair(
                    h_BxTxD, lengths=lengths, h_keep=keeps, carry=layer_carry, return_carry=True
                )
                finals.append(final)
            else:
                rnn = self._rnn(f"layer{layer}")
                layer_carry = None if carry is None else carry[layer]
                final, h_BxTxD = rnn.run(
                    h_BxTxD,
                    lengths=lengths,
                    carry=layer_carry,
                    h_keep=self._keep_mask(batch, train),
                )
                finals.append(final)
        return (finals, h_BxTxD) if return_carry else h_BxTxD
