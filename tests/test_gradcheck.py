"""gradcheck itself: agrees on correct gradients, catches wrong ones, reads well."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.gradcheck import gradcheck


@jax.custom_jvp
def wrong_tanh(x):
    return jnp.tanh(x)


@wrong_tanh.defjvp
def _wrong_tanh_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.tanh(x), (1 - jnp.tanh(x)) * t  # should be 1 - tanh(x)^2


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    params = {
        "layer": {"kernel": rng.normal(size=(4, 3)).astype(np.float32), "bias": np.zeros(3)},
        "scale": np.float32(1.5),
    }
    return params, rng.normal(size=(5, 4)).astype(np.float32)


def model(params, x, act=jnp.tanh):
    h = act(x @ params["layer"]["kernel"] + params["layer"]["bias"][None])
    return params["scale"] * jnp.sum(h**2)


def test_correct_gradient_passes_per_leaf(inputs):
    result = gradcheck(model, *inputs)
    assert set(result.rel_err) == {"['layer']['bias']", "['layer']['kernel']", "['scale']"}
    assert result.max_rel_err < 1e-8
    result.assert_ok(1e-6)


def test_wrong_gradient_is_caught_with_a_readable_table(inputs):
    result = gradcheck(lambda p, x: model(p, x, act=wrong_tanh), *inputs)
    assert result.rel_err["['layer']['kernel']"] > 1e-2
    assert result.rel_err["['scale']"] < 1e-8  # the scale's gradient does not use the JVP
    with pytest.raises(AssertionError, match=r"gradient check failed \(tol 1e-06\)") as err:
        result.assert_ok(1e-6)
    table = str(err.value)
    assert "['layer']['kernel']" in table and "max rel err" in table


def test_runs_in_float64_and_keeps_integer_args():
    seen = {}

    def fn(w, labels):
        seen["dtypes"] = (w.dtype, labels.dtype)
        return jnp.sum(jnp.take(w, labels) ** 3)

    result = gradcheck(fn, jnp.arange(1.0, 5.0, dtype=jnp.float32), jnp.array([0, 2, 2]))
    assert seen["dtypes"] == (jnp.float64, jnp.int32)
    assert result.max_rel_err < 1e-8
    assert jnp.zeros(1).dtype == jnp.float32  # the x64 switch did not leak out


def test_many_parameters_are_chunked():
    w = jnp.linspace(-1.0, 1.0, 700)  # more than one chunk of finite-difference directions
    assert gradcheck(lambda w: jnp.sum(jnp.sin(w) * w), w).max_rel_err < 1e-8


def test_boundary_errors():
    with pytest.raises(ValueError, match=r"gradcheck fn must return a scalar; got shape \(3,\)"):
        gradcheck(lambda w: w * 2, jnp.ones(3))
    with pytest.raises(ValueError, match=r"leaf \['n'\] is int32"):
        gradcheck(lambda p: jnp.sum(p["n"]), {"n": jnp.ones(2, jnp.int32)})


def test_args_may_hold_keys_and_static_objects():
    def fn(w, key, mode):
        noise = jax.random.normal(key, w.shape)
        return jnp.sum((w + noise) ** 2) if mode == "square" else jnp.sum(w)

    result = gradcheck(fn, jnp.ones(3), jax.random.key(0), "square")
    assert result.max_rel_err < 1e-8
