"""What a VAE run reports after training: the importance-weighted test log-likelihood,
sample quality, and pictures.

Figures (``summary.json`` under ``"report"``):

- ``test_log_likelihood``: the mean over the test split of the IWAE bound
  L_K = log (1/K) sum_k p(x, z_k) / q(z_k|x), K = ``iw_samples`` (nats per example; a lower
  bound of log p(x) that tightens as K grows); ``test_bits_per_dim`` = -L_K / (D ln 2) for
  the Bernoulli decoder (a discrete likelihood of the D pixels);
- ``test_elbo``: the ELBO estimated from the same K draws, mean_k log w_k (<= L_K);
- :func:`dlcore.quality.sample_quality` of ``len(test)`` prior samples' mean images.

PNGs (image data): ``samples.png`` (prior samples, decoder means), ``reconstructions.png``
(test inputs above their reconstructions at z = mu(x)), ``interpolations.png`` (each row
decodes z on the segment between the posterior means of two test images, ends included);
for every data set ``latent_space.png``: the test split's posterior means coloured by label
(latent_dim 2 as is; more: projected on their two principal components); 2-D data without
images get the GAN's ``samples.png`` scatter instead of the grids.
"""

import functools
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data.dataset import Dataset
from dlcore.engine.state import TrainState
from dlcore.quality import sample_quality
from dlcore.viz.images import save_image_grid, to_unit

_CHUNK = 64  # examples per compiled IWAE call: K * 64 decoder passes at once
_GRID = 64  # prior samples drawn in samples.png and every snapshot
_RECONSTRUCTIONS = 10
_PAIRS, _STEPS = 6, 10
# Keys fold fixed constants into state.rng: the report and every snapshot are pure
# functions of the state (a snapshot draws the same prior samples every epoch).
REPORT_STREAM = 65432
GRID_STREAM, QUALITY_STREAM, IW_STREAM = 1, 2, 3


def _key(state: TrainState, stream: int) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(state.rng, REPORT_STREAM), stream)


def _images(task, x, data: Dataset) -> np.ndarray:
    """Examples ``[N, ...]`` as ``[N, *image_shape]`` in [0, 1] for :func:`save_image_grid`:
    as they are for pixels in [0, 1], else min-max scaled over all N (a Gaussian decoder
    on standardized data), so that the tiles stay comparable."""
    x = np.asarray(x, np.float64).reshape(len(x), *task.image_shape)
    return np.clip(x, 0.0, 1.0) if data.info.get("pixel_range") == [0.0, 1.0] else to_unit(x)


def sample_grid(task, state: TrainState, data: Dataset, path: pathlib.Path) -> None:
    """Writes ``_GRID`` prior samples (the same draws for every call) as a grid; nothing for
    data that are not images."""
    if task.image_shape is None:
        return
    samples = _sample(task, state, _GRID, _key(state, GRID_STREAM))
    save_image_grid(path, _images(task, samples, data), cols=8)


# Module-level, with the task static: a second report or snapshot of the same task
# compiles nothing.
_sample = jax.jit(lambda task, s, n, key: task.sample(s, n, key), static_argnums=(0, 2))
_iw_chunk = jax.jit(
    lambda task, s, x, key, k: task.importance_weighted(s, x, key, k), static_argnums=(0, 4)
)


def iw_log_likelihood(task, state: TrainState, x: np.ndarray, k: int, key) -> dict:
    """Mean IWAE bound and ELBO estimate over ``x`` (see the module docstring), in compiled
    chunks of ``_CHUNK`` examples (the last padded, so one compile serves them all)."""
    bounds, elbos = [], []
    for i, start in enumerate(range(0, len(x), _CHUNK)):
        chunk = x[start : start + _CHUNK]
        pad = _CHUNK - len(chunk)
        padded = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)]) if pad else chunk
        bound_B, elbo_B = _iw_chunk(task, state, padded, jax.random.fold_in(key, i), k)
        bounds.append(np.asarray(bound_B, np.float64)[: len(chunk)])
        elbos.append(np.asarray(elbo_B, np.float64)[: len(chunk)])
    figures = {
        "test_log_likelihood": float(np.mean(np.concatenate(bounds))),
        "test_elbo": float(np.mean(np.concatenate(elbos))),
        "iw_samples": float(k),
    }
    if task.likelihood == "bernoulli":
        pixels = math.prod(task.x_shape)
        figures["test_bits_per_dim"] = -figures["test_log_likelihood"] / (pixels * math.log(2.0))
    return figures


def interpolation_codes(mu_a_PxL, mu_b_PxL, steps: int) -> jax.Array:
    """``[P * steps, L]``: row p holds (1 - t) mu_a + t mu_b for t = 0, 1/(steps-1), ..., 1.

    Example:
      >>> interpolation_codes(np.zeros((1, 1)), np.ones((1, 1)), 3).ravel().tolist()
      [0.0, 0.5, 1.0]
    """
    t_S = jnp.linspace(0.0, 1.0, steps)[None, :, None]  # jnp: also runs inside jit
    codes_PxSxL = (1.0 - t_S) * mu_a_PxL[:, None, :] + t_S * mu_b_PxL[:, None, :]
    return codes_PxSxL.reshape(-1, mu_a_PxL.shape[1])


def latent_2d(mu_NxL: np.ndarray) -> tuple[np.ndarray, str]:
    """The means themselves when L = 2, else their projection on the top two principal
    components (L = 1: a zero second axis); with the axes' description."""
    mu_NxL = np.asarray(mu_NxL, np.float64)
    if mu_NxL.shape[1] == 2:
        return mu_NxL, "z"
    if mu_NxL.shape[1] == 1:
        return np.concatenate([mu_NxL, np.zeros_like(mu_NxL)], axis=1), "z"
    centred = mu_NxL - mu_NxL.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, f"PCA of {mu_NxL.shape[1]}-d mu"


def plot_latent_space(mu_Nx2: np.ndarray, labels_N, path: pathlib.Path, axes: str) -> None:
    """Scatter of posterior means coloured by label (one colour without labels)."""
    # The object API with the Agg canvas: no pyplot, no global backend state.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if labels_N is None:
        ax.scatter(mu_Nx2[:, 0], mu_Nx2[:, 1], s=6, c="tab:blue")
    else:
        colours = matplotlib.colormaps["tab10"]
        for i, label in enumerate(np.unique(labels_N)):
            at = labels_N == label
            ax.scatter(mu_Nx2[at, 0], mu_Nx2[at, 1], s=6, color=colours(i % 10), label=label)
        ax.legend(loc="best", markerscale=3, fontsize="small", ncol=2)
    ax.set_xlabel(f"{axes} 1")
    ax.set_ylabel(f"{axes} 2")
    ax.set_title("posterior means of the test split")
    fig.savefig(path, dpi=100)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _views(task, state: TrainState, x, key, n: int) -> tuple[jax.Array, ...]:
    """One compiled pass for the pictures: ``n`` prior samples, the posterior means of
    ``x``, the reconstructions of its first ``_RECONSTRUCTIONS``, and the interpolations
    between the means of its first ``_PAIRS`` and next ``_PAIRS`` examples."""
    samples = task.sample(state, n, key)
    mu = task.latent_means(state, x)
    recon = task.reconstruct(state, x[:_RECONSTRUCTIONS])
    pairs = min(_PAIRS, len(x) // 2)
    codes = interpolation_codes(mu[:pairs], mu[pairs : 2 * pairs], _STEPS)
    out, _ = task.decode(state.params, state.model_state, codes)
    return samples, mu, recon, task.mean_image(out)


def vae_report(task, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
    """Writes the PNGs and returns the figures of the module docstring (finite floats)."""
    x = np.asarray(data.test.x)
    figures = iw_log_likelihood(task, state, x, task.iw_samples, _key(state, IW_STREAM))
    samples, mu, recon, between = (
        np.asarray(v) for v in _views(task, state, x, _key(state, QUALITY_STREAM), len(x))
    )
    figures.update(sample_quality(samples, data, task.quality))

    labels = data.test.y if "y" in data.test and np.ndim(data.test.y) == 1 else None
    points_Nx2, axes = latent_2d(mu)
    plot_latent_space(points_Nx2, labels, directory / "latent_space.png", axes)
    if task.image_shape is not None:
        save_image_grid(directory / "samples.png", _images(task, samples[:_GRID], data), cols=8)
        n = len(recon)
        both = _images(task, np.concatenate([x[:n].reshape(recon.shape), recon]), data)
        save_image_grid(directory / "reconstructions.png", both, cols=n)
        path = directory / "interpolations.png"
        save_image_grid(path, _images(task, between, data), cols=_STEPS)
    elif samples.reshape(len(samples), -1).shape[1] == 2:
        from dlcore.tasks.gan_pictures import plot_samples

        scores = {k: v for k, v in figures.items() if k in ("modes_covered", "high_quality")}
        flat = samples.reshape(len(samples), -1)
        plot_samples(np.asarray(data.train.x), flat, directory / "samples.png", scores)
    return figures
