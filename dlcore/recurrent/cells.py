"""Recurrent cells: one time step of the Elman RNN, the LSTM (plain, peephole, coupled) and GRU.

Every cell splits a step in two so that a sequence layer can hoist work out of the time loop:

* ``cell.project(x)`` applies the input weights and biases, ``W x + b``, to inputs of any
  leading shape — the sequence layer calls it once on all ``T`` steps (one large matmul);
* ``cell.step_fn()`` returns a pure function ``step(rec, carry, xp, h_keep) -> (carry, h)``
  doing the recurrent part, with ``rec = cell.recurrent_params()`` passed in explicitly so
  that ``lax.scan``, ``jax.checkpoint`` and custom VJPs see a plain function of arrays.

Carries are dicts: ``{"h": [B, H]}`` (Elman, GRU), ``{"c": [B, H], "h": [B, H]}`` (LSTMs);
each step outputs the new ``h``. ``h_keep`` (``[B, H]`` or None) multiplies h_{t-1} where it
enters a recurrent matmul: variational dropout (Gal & Ghahramani 2016). Gates are packed side
by side in one ``[*, G*H]`` pre-activation: one fused recurrent matmul ``h_{t-1} U [H, G*H]``.
"""

from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from dlcore.activations import get_activation
from dlcore.checks import check_choice
from dlcore.recurrent.inits import gate_blocks_init, get_recurrent_init

Carry = dict[str, jax.Array]
Step = Callable[[dict[str, jax.Array], Carry, jax.Array, jax.Array | None], tuple[Carry, jax.Array]]


def _recurrent_input(h_BxH: jax.Array, h_keep_BxH: jax.Array | None) -> jax.Array:
    return h_BxH if h_keep_BxH is None else h_BxH * h_keep_BxH


# ----------------------------------------------------------------------------- pure steps


def elman_step(
    rec: dict[str, jax.Array],
    carry: Carry,
    xp_BxH: jax.Array,
    h_keep_BxH: jax.Array | None = None,
    *,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
) -> tuple[Carry, jax.Array]:
    """Elman step: h_t = φ(W x_t + b + U h_{t-1}), with ``xp = W x_t + b`` precomputed."""
    h_BxH = activation(xp_BxH + _recurrent_input(carry["h"], h_keep_BxH) @ rec["recurrent_kernel"])
    return {"h": h_BxH}, h_BxH


def lstm_step(
    rec: dict[str, jax.Array],
    carry: Carry,
    xp_Bx4H: jax.Array,
    h_keep_BxH: jax.Array | None = None,
) -> tuple[Carry, jax.Array]:
    """LSTM step with gates packed [i, f, g, o]; see :class:`LSTMCell` for the equations."""
    a_Bx4H = xp_Bx4H + _recurrent_input(carry["h"], h_keep_BxH) @ rec["recurrent_kernel"]
    a_i, a_f, a_g, a_o = jnp.split(a_Bx4H, 4, axis=-1)
    c_BxH = jax.nn.sigmoid(a_f) * carry["c"] + jax.nn.sigmoid(a_i) * jnp.tanh(a_g)
    h_BxH = jax.nn.sigmoid(a_o) * jnp.tanh(c_BxH)
    return {"c": c_BxH, "h": h_BxH}, h_BxH


def peephole_lstm_step(
    rec: dict[str, jax.Array],
    carry: Carry,
    xp_Bx4H: jax.Array,
    h_keep_BxH: jax.Array | None = None,
) -> tuple[Carry, jax.Array]:
    """Peephole LSTM step; see :class:`PeepholeLSTMCell` for the equations."""
    a_Bx4H = xp_Bx4H + _recurrent_input(carry["h"], h_keep_BxH) @ rec["recurrent_kernel"]
    a_i, a_f, a_g, a_o = jnp.split(a_Bx4H, 4, axis=-1)
    c_prev_BxH = carry["c"]
    # Peepholes are diagonal weights [H]; lift them to [1, H] (rank promotion is an error).
    p_i, p_f, p_o = (rec[k][None, :] for k in ("peephole_i", "peephole_f", "peephole_o"))
    i_BxH = jax.nn.sigmoid(a_i + p_i * c_prev_BxH)
    f_BxH = jax.nn.sigmoid(a_f + p_f * c_prev_BxH)
    c_BxH = f_BxH * c_prev_BxH + i_BxH * jnp.tanh(a_g)
    o_BxH = jax.nn.sigmoid(a_o + p_o * c_BxH)
    h_BxH = o_BxH * jnp.tanh(c_BxH)
    return {"c": c_BxH, "h": h_BxH}, h_BxH


def coupled_lstm_step(
    rec: dict[str, jax.Array],
    carry: Carry,
    xp_Bx3H: jax.Array,
    h_keep_BxH: jax.Array | None = None,
) -> tuple[Carry, jax.Array]:
    """Coupled input/forget LSTM step, gates packed [f, g, o]; see :class:`CoupledLSTMCell`."""
    a_Bx3H = xp_Bx3H + _recurrent_input(carry["h"], h_keep_BxH) @ rec["recurrent_kernel"]
    a_f, a_g, a_o = jnp.split(a_Bx3H, 3, axis=-1)
    f_BxH = jax.nn.sigmoid(a_f)
    c_BxH = f_BxH * carry["c"] + (1.0 - f_BxH) * jnp.tanh(a_g)
    h_BxH = jax.nn.sigmoid(a_o) * jnp.tanh(c_BxH)
    return {"c": c_BxH, "h": h_BxH}, h_BxH


def gru_step(
    rec: dict[str, jax.Array],
    carry: Carry,
    xp_Bx3H: jax.Array,
    h_keep_BxH: jax.Array | None = None,
) -> tuple[Carry, jax.Array]:
    """GRU step (Cho et al. 2014), gates packed [z, r, n]; see :class:`GRUCell`."""
    h_prev_BxH = carry["h"]
    h_in_BxH = _recurrent_input(h_prev_BxH, h_keep_BxH)
    u_Hx3H = rec["recurrent_kernel"]
    hidden = h_prev_BxH.shape[-1]
    # The reset gate acts on h before the candidate's matmul (Cho's form), so the candidate
    # block of U cannot join the z/r matmul: two recurrent matmuls per step.
    a_zr_Bx2H = xp_Bx3H[..., : 2 * hidden] + h_in_BxH @ u_Hx3H[:, : 2 * hidden]
    z_BxH, r_BxH = jnp.split(jax.nn.sigmoid(a_zr_Bx2H), 2, axis=-1)
    n_BxH = jnp.tanh(xp_Bx3H[..., 2 * hidden :] + (r_BxH * h_in_BxH) @ u_Hx3H[:, 2 * hidden :])
    h_BxH = z_BxH * h_prev_BxH + (1.0 - z_BxH) * n_BxH
    return {"h": h_BxH}, h_BxH


def gru_reset_after_step(
    rec: dict[str, jax.Array],
    carry: Carry,
    xp_Bx3H: jax.Array,
    h_keep_BxH: jax.Array | None = None,
) -> tuple[Carry, jax.Array]:
    """GRU step with the reset gate after the candidate's matmul (cuDNN/PyTorch form),
    gates packed [z, r, n]; see :class:`GRUCell` with ``reset_after=True``."""
    h_prev_BxH = carry["h"]
    hidden = h_prev_BxH.shape[-1]
    # r multiplies U_n h + b_hn, not h, so all three blocks share one fused matmul.
    a_Bx3H = _recurrent_input(h_prev_BxH, h_keep_BxH) @ rec["recurrent_kernel"]
    z_BxH, r_BxH = jnp.split(
        jax.nn.sigmoid(xp_Bx3H[..., : 2 * hidden] + a_Bx3H[..., : 2 * hidden]), 2, axis=-1
    )
    hn_BxH = a_Bx3H[..., 2 * hidden :] + rec["recurrent_bias"][None, :]
    n_BxH = jnp.tanh(xp_Bx3H[..., 2 * hidden :] + r_BxH * hn_BxH)
    h_BxH = z_BxH * h_prev_BxH + (1.0 - z_BxH) * n_BxH
    return {"h": h_BxH}, h_BxH


# ----------------------------------------------------------------------------- modules


class RecurrentCell(nn.Module):
    """Weights of one recurrent cell: input projection, fused recurrent kernel, extras.

    Subclasses set ``num_gates``, ``carry_names`` and ``step_fn``; they may add parameters
    to ``recurrent_params``.

    Attributes:
      features: hidden size H.
      kernel_init: initializer of the input kernel ``W`` (``[D, G*H]``).
      recurrent_init: name in ``RECURRENT_INITS`` for each ``[H, H]`` gate block of ``U``.
    """

    features: int
    kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()
    recurrent_init: str = "orthogonal"

    num_gates: ClassVar[int] = 1
    carry_names: ClassVar[tuple[str, ...]] = ("h",)

    def _bias_init(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jnp.zeros(shape, dtype)

    def setup(self) -> None:
        if self.features < 1:
            raise ValueError(f"cell features must be a positive int; got {self.features}")
        get_recurrent_init(self.recurrent_init)  # one-line error for a bad name
        width = self.num_gates * self.features
        self.input = nn.Dense(width, kernel_init=self.kernel_init, bias_init=self._bias_init)
        self.recurrent_kernel = self.param(
            "recurrent_kernel",
            gate_blocks_init(self.recurrent_init, self.num_gates),
            (self.features, width),
        )

    def project(self, x_xD: jax.Array) -> jax.Array:
        """xp = W x + b for inputs of any leading shape: ``[..., D] -> [..., G*H]``."""
        return self.input(x_xD)

    def input_params(self, x_xD: jax.Array) -> tuple[jax.Array, jax.Array]:
        """:meth:`project`'s own ``(W [D, G*H], b [G*H])``, for kernels that fuse it
        (``x_xD`` only gives D when they do not exist yet, at ``init``)."""
        if not self.input.has_variable("params", "kernel"):
            self.input(x_xD[:0])  # an empty batch: creates the parameters, computes nothing
        params = self.input.variables["params"]
        return params["kernel"], params["bias"]

    def recurrent_params(self) -> dict[str, jax.Array]:
        """The arrays the pure step reads: ``{"recurrent_kernel": U, ...}``."""
        return {"recurrent_kernel": self.recurrent_kernel}

    def step_fn(self) -> Step:
        """The pure step ``(rec, carry, xp, h_keep) -> (carry, h)``; depends only on fields."""
        raise NotImplementedError

    def zero_carry(self, batch: int, dtype=jnp.float32) -> Carry:
        """An all-zero carry for ``batch`` sequences."""
        return {name: jnp.zeros((batch, self.features), dtype) for name in self.carry_names}

    def __call__(self, carry: Carry, x_BxD: jax.Array) -> tuple[Carry, jax.Array]:
        """One full step on raw inputs ``[B, D]``: returns ``(new_carry, h_t)``."""
        return self.step_fn()(self.recurrent_params(), carry, self.project(x_BxD), None)


class ElmanCell(RecurrentCell):
    """Elman (vanilla) RNN cell.

        h_t = φ(W x_t + b + U h_{t-1}),   φ = tanh or ReLU

    Attributes:
      activation: name in ``dlcore.activations.ACTIVATIONS``; "tanh" or "relu" in practice
        (pair "relu" with ``recurrent_init="identity"`` for the IRNN).

    Example:
      >>> cell = ElmanCell(features=8)
      >>> carry = cell.zero_carry(2)
      >>> variables = cell.init(jax.random.key(0), carry, jnp.ones((2, 3)))
      >>> cell.apply(variables, carry, jnp.ones((2, 3)))[1].shape
      (2, 8)
    """

    activation: str = "tanh"

    def step_fn(self) -> Step:
        act = get_activation(self.activation)

        def step(rec, carry, xp, h_keep=None):
            return elman_step(rec, carry, xp, h_keep, activation=act)

        return step


class LSTMCell(RecurrentCell):
    """Long short-term memory cell (Hochreiter & Schmidhuber 1997, with forget gate).

        [a_i, a_f, a_g, a_o] = W x_t + b + U h_{t-1}     (one fused matmul, U: [H, 4H])
        i = σ(a_i),  f = σ(a_f),  g = tanh(a_g),  o = σ(a_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)

    Attributes:
      forget_bias: initial value of the forget gate's bias b_f (1.0 keeps memory early on,
        Gers et al. 2000; Jozefowicz et al. 2015).

    Example:
      >>> cell = LSTMCell(features=8)
      >>> carry = cell.zero_carry(2)
      >>> variables = cell.init(jax.random.key(0), carry, jnp.ones((2, 3)))
      >>> sorted(cell.apply(variables, carry, jnp.ones((2, 3)))[0])
      ['c', 'h']
    """

    forget_bias: float = 1.0

    num_gates: ClassVar[int] = 4
    carry_names: ClassVar[tuple[str, ...]] = ("c", "h")
    # Position of the forget gate's block inside the packed gates.
    _forget_block: ClassVar[int] = 1

    def _bias_init(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        h = self.features
        start = self._forget_block * h
        return jnp.zeros(shape, dtype).at[start : start + h].set(self.forget_bias)

    def step_fn(self) -> Step:
        return lstm_step


class PeepholeLSTMCell(LSTMCell):
    """LSTM with peephole connections (Gers, Schraudolph & Schmidhuber 2002).

    The input and forget gates see the previous cell state, the output gate sees the new one:

        [a_i, a_f, a_g, a_o] = W x_t + b + U h_{t-1}
        i = σ(a_i + p_i ⊙ c_{t-1}),  f = σ(a_f + p_f ⊙ c_{t-1}),  g = tanh(a_g)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        o = σ(a_o + p_o ⊙ c_t)
        h_t = o ⊙ tanh(c_t)

    The peephole weights p_i, p_f, p_o (``[H]`` each, diagonal) start at zero.

    Example:
      >>> cell = PeepholeLSTMCell(features=8)
      >>> carry = cell.zero_carry(2)
      >>> variables = cell.init(jax.random.key(0), carry, jnp.ones((2, 3)))
      >>> variables["params"]["peephole_o"].shape
      (8,)
    """

    def setup(self) -> None:
        super().setup()
        zeros = nn.initializers.zeros
        self.peephole_i = self.param("peephole_i", zeros, (self.features,))
        self.peephole_f = self.param("peephole_f", zeros, (self.features,))
        self.peephole_o = self.param("peephole_o", zeros, (self.features,))

    def recurrent_params(self) -> dict[str, jax.Array]:
        return {
            "recurrent_kernel": self.recurrent_kernel,
            "peephole_i": self.peephole_i,
            "peephole_f": self.peephole_f,
            "peephole_o": self.peephole_o,
        }

    def step_fn(self) -> Step:
        return peephole_lstm_step


class CoupledLSTMCell(LSTMCell):
    """LSTM with coupled input and forget gates (i = 1 − f; Greff et al. 2017's "CIFG").

        [a_f, a_g, a_o] = W x_t + b + U h_{t-1}     (one fused matmul, U: [H, 3H])
        f = σ(a_f),  g = tanh(a_g),  o = σ(a_o)
        c_t = f ⊙ c_{t-1} + (1 − f) ⊙ g
        h_t = o ⊙ tanh(c_t)

    Example:
      >>> cell = CoupledLSTMCell(features=8)
      >>> carry = cell.zero_carry(2)
      >>> variables = cell.init(jax.random.key(0), carry, jnp.ones((2, 3)))
      >>> variables["params"]["recurrent_kernel"].shape
      (8, 24)
    """

    num_gates: ClassVar[int] = 3
    _forget_block: ClassVar[int] = 0

    def step_fn(self) -> Step:
        return coupled_lstm_step


class GRUCell(RecurrentCell):
    """Gated recurrent unit (Cho et al. 2014); by default the reset gate acts before the
    candidate's matmul.

        z = σ(W_z x_t + b_z + U_z h_{t-1})              update gate
        r = σ(W_r x_t + b_r + U_r h_{t-1})              reset gate
        n = tanh(W_n x_t + b_n + U_n (r ⊙ h_{t-1}))     candidate (reset before)
        n = tanh(W_n x_t + b_n + r ⊙ (U_n h_{t-1} + b_hn))   candidate (``reset_after``)
        h_t = z ⊙ h_{t-1} + (1 − z) ⊙ n

    Gates are packed [z, r, n]; U = [U_z | U_r | U_n] is ``[H, 3H]``. The reset-after form is
    cuDNN's, PyTorch's (gates r, z, n there), Keras' ``reset_after=True`` and flax's
    ``GRUCell``; it has one more parameter, ``recurrent_bias`` = b_hn ``[H]`` (zeros at
    init), and one fused recurrent matmul per step instead of two.

    Attributes:
      reset_after: apply r after U_n h_{t-1} + b_hn (the form PyTorch weights need).

    Example:
      >>> cell = GRUCell(features=8)
      >>> carry = cell.zero_carry(2)
      >>> variables = cell.init(jax.random.key(0), carry, jnp.ones((2, 3)))
      >>> cell.apply(variables, carry, jnp.ones((2, 3)))[1].shape
      (2, 8)
    """

    reset_after: bool = False

    num_gates: ClassVar[int] = 3

    def setup(self) -> None:
        super().setup()
        if self.reset_after:
            zeros = nn.initializers.zeros
            self.recurrent_bias = self.param("recurrent_bias", zeros, (self.features,))

    def recurrent_params(self) -> dict[str, jax.Array]:
        if not self.reset_after:
            return {"recurrent_kernel": self.recurrent_kernel}
        return {"recurrent_kernel": self.recurrent_kernel, "recurrent_bias": self.recurrent_bias}

    def step_fn(self) -> Step:
        return gru_reset_after_step if self.reset_after else gru_step


CELLS: dict[str, Callable[..., RecurrentCell]] = {
    "rnn_tanh": ElmanCell,
    "rnn_relu": lambda **kw: ElmanCell(**{"activation": "relu", **kw}),
    "lstm": LSTMCell,
    "peephole_lstm": PeepholeLSTMCell,
    "coupled_lstm": CoupledLSTMCell,
    "gru": GRUCell,
}


def make_cell(name: str, features: int, **kwargs: Any) -> RecurrentCell:
    """Builds the cell registered under ``name`` with hidden size ``features``.

    Raises:
      ValueError: if ``name`` is not registered; the message lists the valid names.
    Example:
      >>> make_cell("gru", 16).num_gates
      3
    """
    check_choice(name, CELLS, "cell")
    return CELLS[name](features=features, **kwargs)
