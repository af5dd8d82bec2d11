"""What an RBM or deep-belief-net run reports besides its metrics: test figures, the bottom
layer's filters and samples from long Gibbs chains, as PNGs.

Samples (``samples.png``): C = 10 chains of the TOP RBM start at the hidden sample of 10
test images propagated up (mean-field), run R x ``sample_steps`` Gibbs steps in one
compiled ``lax.scan`` of ``fori_loop``\\ s, and every ``sample_steps`` steps the top's
E[v | h] is propagated down through the layers below (mean-field,
E[v_l | h_{l+1}] for l = L - 2, ..., 0, Hinton et al. 2006's single down pass). Row 0
shows the starting test images, row r the chains after r x ``sample_steps`` steps.
"""

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data.dataset import Dataset
from dlcore.energy import rbm
from dlcore.engine.state import TrainState

CHAINS = 10  # columns of samples.png
SNAPSHOTS = 10  # rows after the data row
MAX_FILTERS = 100
_CHUNK = 256  # bounds the B V H numbers of the exact pseudo-log-likelihood
_SCORE_SEED = 0  # the one-bit estimate's bits (fixed: a report is reproducible)


def test_scores(task, params, x_NxD: np.ndarray) -> dict:
    """Mean test figures of the bottom RBM: ``test_recon_mse``, ``test_free_energy`` and,
    for Bernoulli data, ``test_pll`` (exact, all V bits) and ``test_pll_one_bit``
    (scikit-learn's estimator: V times one random bit's term)."""
    p0, visible = task.rbm(params, 0), task.layer_visible(0)

    @jax.jit
    def sums(v_BxV, key):
        out = {
            "test_recon_mse": jnp.sum(
                jnp.mean((rbm.reconstruct(p0, v_BxV, visible) - v_BxV) ** 2, 1)
            ),
            "test_free_energy": jnp.sum(rbm.free_energy(p0, v_BxV, visible)),
        }
        if task.binary:
            out["test_pll"] = jnp.sum(rbm.pseudo_log_likelihood(p0, v_BxV))
            out["test_pll_one_bit"] = jnp.sum(rbm.one_bit_pll(p0, v_BxV, key))
        return out

    v = np.asarray(x_NxD, np.float32).reshape(len(x_NxD), -1)
    key = jax.random.PRNGKey(_SCORE_SEED)
    parts = [sums(v[i : i + _CHUNK], jax.random.fold_in(key, i)) for i in range(0, len(v), _CHUNK)]
    return {k: sum(float(part[k]) for part in parts) / max(len(v), 1) for k in parts[0]}


def dream(task, params, x_CxD: jax.Array, key: jax.Array) -> jax.Array:
    """Samples of the top RBM propagated down (module docstring), ``[SNAPSHOTS + 1, C, D]``
    with row 0 the data the chains start from."""
    top = task.num_layers - 1
    p_top, visible_top = task.rbm(params, top), task.layer_visible(top)
    v_top = task.inputs(params, x_CxD, top)[-1]
    k_start, k_run = jax.random.split(key)
    h = rbm.sample(
        rbm.hidden_probs(p_top, v_top), jax.random.uniform(k_start, (len(v_top), p_top.w.shape[1]))
    )

    def snapshot(h, key):
        _, h = rbm.sample_chains(p_top, h, key, task.sample_steps, visible_top)
        return h, task.down(params, rbm.visible_mean(p_top, h, visible_top), top)

    _, rows = jax.lax.scan(snapshot, h, jax.random.split(k_run, SNAPSHOTS))
    start = x_CxD.reshape(len(x_CxD), -1)
    return jnp.concatenate([start[None], rows], axis=0)


def _tiles(images_NxD: np.ndarray, shape, symmetric: bool) -> np.ndarray:
    """Grey RGB tiles ``[N, h, w, 3]``, ink dark: probabilities as they are, others
    scaled per tile (``symmetric``: zero mid-grey)."""
    from dlcore.viz.images import to_unit, to_unit_symmetric

    out = []
    for image in np.asarray(images_NxD, np.float64):
        if symmetric:
            unit = to_unit_symmetric(image)
        elif image.min() >= 0.0 and image.max() <= 1.0:
            unit = image
        else:
            unit = to_unit(image)
        out.append(np.repeat((1.0 - unit).reshape(*shape, 1), 3, axis=2))
    return np.stack(out)


def rbm_report(task, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
    """The test figures of :func:`test_scores`; ``filters.png`` (the bottom layer's
    first hidden units' weights, each scaled to its own largest |w|, zero mid-grey) and
    ``samples.png`` (:func:`dream`) when the inputs are images (``image_shape``)."""
    from dlcore.viz.images import grid, save_png

    x = np.asarray(data.test.x)
    out = test_scores(task, state.params, x)
    shape = task.image_shape
    if shape and math.prod(shape) == math.prod(x.shape[1:]):
        w_VxH = np.asarray(task.rbm(state.params, 0).w)
        filters = _tiles(w_VxH.T[:MAX_FILTERS], shape, symmetric=True)
        save_png(directory / "filters.png", grid(filters, scale=4))
        key = jax.random.fold_in(state.rng, _SCORE_SEED)
        rows = np.asarray(jax.jit(lambda p, x: dream(task, p, x, key))(state.params, x[:CHAINS]))
        tiles = _tiles(rows.reshape(-1, rows.shape[-1]), shape, symmetric=False)
        save_png(directory / "samples.png", grid(tiles, cols=rows.shape[1], scale=4))
    return out
