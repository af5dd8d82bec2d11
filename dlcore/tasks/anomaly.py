"""Novelty detection by reconstruction error: an autoencoder trained without some classes
rebuilds them worse, so the per-example error is an anomaly score.

With s_i = (1/D) ||x_hat_i - x_i||^2 on the test split and positives the examples of the
held-out classes (``info["holdout_classes"]`` of the data set), the figure of merit is the
ROC AUC, P(s_anomaly > s_normal) over all (held-out, normal) pairs (ties count one half):
0.5 is chance, 1.0 ranks every held-out example above every normal one.
"""

import pathlib

import numpy as np


def anomaly_auc(scores_N: np.ndarray, is_anomaly_N: np.ndarray) -> float:
    """ROC AUC of ``scores_N`` for the positives ``is_anomaly_N`` (scikit-learn's metric).

    Raises:
      ValueError: when one of the two groups is empty (no AUC is defined).
    """
    # Imported here: scikit-learn is slow to import and only this report needs it.
    from sklearn.metrics import roc_auc_score

    is_anomaly_N = np.asarray(is_anomaly_N, bool)
    if is_anomaly_N.all() or not is_anomaly_N.any():
        raise ValueError("the anomaly AUC needs both held-out and normal test examples")
    return float(roc_auc_score(is_anomaly_N, np.asarray(scores_N, np.float64)))


def holdout_report(
    scores_N: np.ndarray, labels_N: np.ndarray, holdout: list[int], directory: pathlib.Path
) -> dict:
    """The anomaly figures of a run trained without the ``holdout`` classes.

    Draws ``anomaly_scores.png`` (score histograms of normal and held-out test examples).

    Args:
      scores_N: per-example reconstruction errors of the test split.
      labels_N: the test split's class labels.
      holdout: the classes left out of training (the positives).
      directory: where the PNG goes.

    Returns:
      ``anomaly_auc`` and the mean score of each group (``anomaly_score_normal``,
      ``anomaly_score_holdout``).
    """
    is_anomaly_N = np.isin(np.asarray(labels_N), holdout)
    auc = anomaly_auc(scores_N, is_anomaly_N)
    plot_score_histogram(scores_N, is_anomaly_N, holdout, auc, directory / "anomaly_scores.png")
    return {
        "anomaly_auc": auc,
        "anomaly_score_normal": float(np.mean(scores_N[~is_anomaly_N])),
        "anomaly_score_holdout": float(np.mean(scores_N[is_anomaly_N])),
    }


def plot_score_histogram(
    scores_N: np.ndarray,
    is_anomaly_N: np.ndarray,
    holdout: list[int],
    auc: float,
    path: pathlib.Path,
) -> None:
    """Overlaid density histograms of the scores of normal and held-out examples, on a
    log axis (reconstruction errors are skewed: a few badly rebuilt digits dominate)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    scores_N = np.maximum(np.asarray(scores_N, np.float64), 1e-12)  # log bins need > 0
    bins = np.geomspace(scores_N.min(), scores_N.max(), 40)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    groups = ((~is_anomaly_N, "normal (trained on)"), (is_anomaly_N, f"held out {holdout}"))
    for mask, label in groups:
        ax.hist(
            scores_N[mask], bins=bins, density=True, alpha=0.55, label=f"{label}, n={mask.sum()}"
        )
    ax.set_xscale("log")
    ax.set_xlabel("reconstruction error (test MSE per example)")
    ax.set_ylabel("density")
    ax.set_title(f"anomaly scores, ROC AUC {auc:.3f}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
