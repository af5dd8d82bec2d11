"""The Fréchet distance between two sets of feature vectors, each fitted by a Gaussian.

For Gaussians N(m1, S1) and N(m2, S2) the squared 2-Wasserstein (Fréchet) distance is

    d^2 = ||m1 - m2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

FID (Heusel et al. 2017) is this distance in the features of an Inception network; dlcore
takes the features of a digits classifier that dlcore trained (:mod:`dlcore.quality.classifier`).
The trace of the matrix square root is computed as Tr((S1^(1/2) S2 S1^(1/2))^(1/2)), a
symmetric positive semi-definite matrix with the same eigenvalues as S1 S2, so two
symmetric eigendecompositions replace a general (complex-valued) ``sqrtm``.
"""

import numpy as np


def gaussian_fit(feats_NxF: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[F]`` and unbiased covariance ``[F, F]`` of N >= 2 feature vectors, float64."""
    feats_NxF = np.asarray(feats_NxF, np.float64)
    if feats_NxF.ndim != 2 or feats_NxF.shape[0] < 2:
        raise ValueError(f"a Gaussian fit needs features [N >= 2, F]; got {feats_NxF.shape}")
    return feats_NxF.mean(axis=0), np.cov(feats_NxF, rowvar=False).reshape(
        feats_NxF.shape[1], feats_NxF.shape[1]
    )


def _psd_sqrt(sym_FxF: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((sym_FxF + sym_FxF.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def gaussian_frechet(m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> float:
    """``d^2`` of the module docstring for two Gaussians given by mean and covariance."""
    root1 = _psd_sqrt(s1)
    cross = np.linalg.eigvalsh(root1 @ s2 @ root1)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(cross, 0.0, None))))
    d2 = float(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)
    return max(d2, 0.0)  # rounding can take an exact 0 a hair below it


def frechet_distance(feats_a_NxF: np.ndarray, feats_b_MxF: np.ndarray) -> float:
    """The Fréchet distance (squared, as FID reports it) between two feature sets.

    Args:
      feats_a_NxF, feats_b_MxF: feature vectors of the same width F, N, M >= 2.

    Returns:
      ``d^2 >= 0``; 0 for identical sets. It shrinks as N, M grow (the covariance
      estimates are biased), so compare only distances computed with equal set sizes.

    Example:
      >>> a = np.random.default_rng(0).normal(size=(500, 3))
      >>> round(frechet_distance(a, a + [1.0, 0.0, 0.0]), 6)
      1.0
    """
    if np.shape(feats_a_NxF)[1:] != np.shape(feats_b_MxF)[1:]:
        raise ValueError(
            f"features of different widths: {np.shape(feats_a_NxF)} and {np.shape(feats_b_MxF)}"
        )
    return gaussian_frechet(*gaussian_fit(feats_a_NxF), *gaussian_fit(feats_b_MxF))
