"""What an autoencoder run reports besides its metrics: test inputs drawn above their
reconstructions, and PCA's figure for the same code width as the baseline to beat.

PCA with K components is the best any linear rank-K reconstruction can do in squared error
(Eckart-Young), and a linear autoencoder trained with MSE reaches it (Baldi & Hornik 1989):

    x_hat = mu + V_K V_K^T (x - mu),    V_K the top-K right singular vectors of X_train - mu

    variance explained = 1 - sum ||x_hat - x||^2 / sum ||x - mu||^2   (test split, mu the
    training mean, the same figure as the autoencoder's ``test_variance_explained``)
"""

import math
import pathlib

import numpy as np


def variance_explained(x: np.ndarray, x_hat: np.ndarray, mean: np.ndarray) -> float:
    """1 - SSE / SST around ``mean`` (the training mean, shaped like one example): the
    fraction of the test spread rebuilt. Differences are taken in the inputs' dtype and
    squared and summed in float64."""
    err = (x_hat - x).astype(np.float64) ** 2
    spread = (x - mean).astype(np.float64) ** 2
    return float(1.0 - err.sum() / max(spread.sum(), 1e-12))


def pca_reconstruction(train_x: np.ndarray, test_x: np.ndarray, k: int) -> np.ndarray:
    """mu + V_K V_K^T (x - mu) for every test example (float64, flattened to ``[N, D]``),
    with mu and the top-``k`` components V_K from ``train_x`` (module docstring)."""
    train = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
    test = np.asarray(test_x, np.float64).reshape(len(test_x), -1)
    mean_D = train.mean(axis=0)
    _, _, vt_KxD = np.linalg.svd(train - mean_D, full_matrices=False)
    v_DxK = vt_KxD[:k].T
    return mean_D + (test - mean_D) @ v_DxK @ v_DxK.T


def pca_variance_explained(train_x: np.ndarray, test_x: np.ndarray, k: int) -> float:
    """The test variance explained by the top-``k`` principal components of ``train_x``
    (see the module docstring); inputs of any shape are flattened to ``[N, D]``.

    Example:
      >>> pca_variance_explained(data.train.x, data.test.x, 16)   # digits: about 0.71
    """
    test = np.asarray(test_x, np.float64).reshape(len(test_x), -1)
    mean_D = np.asarray(train_x, np.float64).reshape(len(train_x), -1).mean(axis=0)
    return variance_explained(test, pca_reconstruction(train_x, test_x, k), mean_D)


def plot_reconstructions(
    x_NxD: np.ndarray, x_hat_NxD: np.ndarray, image_shape, path: pathlib.Path
) -> None:
    """Top row the inputs, bottom row their reconstructions, on the inputs' colour scale.

    Examples are drawn as ``image_shape`` images when they have that many values, else
    the N examples are drawn as N rows of numbers, inputs above reconstructions.
    """
    # Imported here: matplotlib is slow to import and only the end of a run needs it.
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    n = len(x_NxD)
    flat_in = x_NxD.reshape(n, -1)
    flat_out = x_hat_NxD.reshape(n, -1)
    # Percentiles, not min/max: a standardized, rarely inked pixel can sit at 10+ standard
    # deviations and would wash every other pixel out to one grey.
    lo, hi = (float(v) for v in np.percentile(flat_in, [2.0, 98.0]))
    if image_shape and math.prod(image_shape) == flat_in.shape[1]:
        fig, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.6), squeeze=False)
        for i in range(n):
            for row, images in enumerate((flat_in, flat_out)):
                ax = axes[row, i]
                ax.imshow(images[i].reshape(image_shape), cmap="gray_r", vmin=lo, vmax=hi)
                ax.set_xticks([])
                ax.set_yticks([])
        axes[0, 0].set_ylabel("input")
        axes[1, 0].set_ylabel("output")
    else:
        fig, axes = plt.subplots(2, 1, figsize=(8, 4), squeeze=False)
        panels = ((flat_in, "inputs"), (flat_out, "reconstructions"))
        for ax, (rows, title) in zip(axes[:, 0], panels, strict=True):
            ax.imshow(rows, aspect="auto", cmap="coolwarm", vmin=lo, vmax=hi)
            ax.set_title(title)
            ax.set_ylabel("example")
        axes[1, 0].set_xlabel("feature")
    fig.suptitle("test inputs (top) and reconstructions (bottom)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
