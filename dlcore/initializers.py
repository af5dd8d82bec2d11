"""Weight initializers by name, each a Flax/JAX initializer ``init(key, shape, dtype)``.

For a kernel of shape ``[..., fan_in, fan_out]`` (receptive-field dims first, as in Flax
convolutions) fan_in and fan_out are multiplied by the receptive-field size. Variances:

    glorot:  Var = 2 / (fan_in + fan_out)     (uniform on +-sqrt(6 / (fan_in + fan_out)))
    he:      Var = 2 / fan_in                 (uniform on +-sqrt(6 / fan_in))
    lecun:   Var = 1 / fan_in
    small:   N(0, 0.001^2)
    uniform: U(-0.05, 0.05), Var = 0.05^2 / 3 (Keras 1's ``init='uniform'``, whatever the fans)

The ``*_normal`` variants are JAX's truncated normals rescaled so the variance is exactly the
one above (Flax's default, so ``lecun_normal`` reproduces ``nn.Dense``'s default).
"""

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

from dlcore.checks import check_choice

Initializer = jinit.Initializer

SMALL_GAUSSIAN_STDDEV = 0.001
KERAS_UNIFORM_LIMIT = 0.05


def symmetric_uniform(limit: float = KERAS_UNIFORM_LIMIT) -> Initializer:
    """W ~ U(-limit, limit) whatever the shape: Keras 1's ``init='uniform'`` (limit 0.05).

    JAX's ``initializers.uniform(scale)`` draws from [0, scale), so it is not this.

    Example:
      >>> w = symmetric_uniform(0.05)(jax.random.key(0), (1000,))
      >>> bool(w.min() >= -0.05 and w.max() < 0.05 and w.min() < 0)
      True
    """

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-limit, maxval=limit)

    return init


def identity(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """The identity map: ``eye`` for a ``[D_in, D_out]`` kernel, a centred delta for conv kernels.

    A conv kernel ``[kh, kw, C_in, C_out]`` gets ``eye(C_in, C_out)`` at its centre tap, so a
    'same'-padded convolution initially copies its input (Le et al.'s IRNN uses the 2-D case).
    """
    del key
    if len(shape) < 2:
        raise ValueError(f"identity init needs a kernel of rank >= 2; got shape {tuple(shape)}")
    eye = jnp.eye(shape[-2], shape[-1], dtype=dtype)
    if len(shape) == 2:
        return eye
    kernel = jnp.zeros(shape, dtype)
    centre = tuple(s // 2 for s in shape[:-2])
    return kernel.at[centre].set(eye)


def forget_gate_bias(value: float = 1.0, num_gates: int = 1, gate_index: int = 0) -> Initializer:
    """A bias initializer that opens an LSTM's forget gate: b_f = ``value``, other gates 0.

    With the default ``num_gates=1`` it fills the whole vector (a layout with one Dense per
    gate); for a fused ``[num_gates * H]`` bias it fills slice ``gate_index`` only. Starting
    with b_f = 1 keeps the cell state (and its gradient) flowing early in training
    (Gers et al., 2000; Jozefowicz et al., 2015).

    Example:
      >>> forget_gate_bias(1.0, num_gates=4, gate_index=1)(None, (8,)).tolist()
      [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    """

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        del key
        if len(shape) != 1 or shape[0] % num_gates:
            raise ValueError(
                f"forget-gate bias must be a vector whose length is a multiple of "
                f"num_gates={num_gates}; got shape {tuple(shape)}"
            )
        hidden = shape[0] // num_gates
        bias = jnp.zeros(shape, dtype)
        return bias.at[gate_index * hidden : (gate_index + 1) * hidden].set(value)

    return init


INITIALIZERS: dict[str, Initializer] = {
    "zeros": jinit.zeros,
    "ones": jinit.ones,
    "small_normal": jinit.normal(stddev=SMALL_GAUSSIAN_STDDEV),
    "uniform": symmetric_uniform(),
    "glorot_uniform": jinit.glorot_uniform(),
    "glorot_normal": jinit.glorot_normal(),
    "he_uniform": jinit.he_uniform(),
    "he_normal": jinit.he_normal(),
    "lecun_uniform": jinit.lecun_uniform(),
    "lecun_normal": jinit.lecun_normal(),
    "orthogonal": jinit.orthogonal(),
    "identity": identity,
    "forget_gate_bias": forget_gate_bias(),
}


def get_initializer(name: str) -> Initializer:
    """Returns the initializer registered under ``name``.

    Raises:
      ValueError: if ``name`` is not registered; the message lists the valid names.

    Example:
      >>> get_initializer("he_normal")(jax.random.key(0), (256, 128)).shape
      (256, 128)
    """
    check_choice(name, INITIALIZERS, "initializer")
    return INITIALIZERS[name]
