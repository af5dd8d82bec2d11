"""What a finished word2vec run reports: neighbours, morphology analogies and 2-D plots of
its word vectors next to a PPMI + SVD baseline built from the same co-occurrence counts.

Words are chosen by rules, never by hand:

- *query words* (neighbours listed): the ``query_words`` most frequent vocabulary words of
  >= 3 letters that are not in scikit-learn's ``ENGLISH_STOP_WORDS``;
- *plotted words*: the ``plot_words`` most frequent words by the same rule;
- *analogies*: :mod:`dlcore.text.analogies` (suffix rules, seeded subsample) over the
  ``analogy_vocab`` most frequent words (answers are searched in the whole vocabulary);
  rare words' vectors are noise on a corpus this small, so, like Mikolov et al.'s
  questions (top 30k words of a 6B-word corpus), questions use frequent words only.

Files written: ``neighbours.json`` (per method: query word -> [[neighbour, cosine], ...];
plus the analogy relations' pair counts and a few example questions),
``embedding_pca.png`` (the run's method) and ``svd_pca.png`` (the baseline).
"""

import json
import pathlib
from typing import NamedTuple

import numpy as np

from dlcore.data.dataset import Dataset
from dlcore.text.analogies import analogy_accuracy, make_analogies, morphology_pairs, nearest
from dlcore.text.ppmi import cooccurrence, ppmi, svd_embeddings

MIN_CONTENT_LETTERS = 3
EXAMPLE_QUESTIONS = 3  # per relation, in neighbours.json


class ReportSettings(NamedTuple):
    """What the report evaluates (fields of the ``[task]`` section of the same names)."""

    query_words: int = 10
    neighbours: int = 8
    analogies_per_relation: int = 1000
    analogy_seed: int = 0
    analogy_vocab: int = 1000
    plot_words: int = 150
    ppmi_alpha: float = 0.75


def content_words(vocab: list[str], n: int) -> list[int]:
    """Ids of the ``n`` first (most frequent) words of >= 3 letters that are no stop words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    ids = [
        i
        for i, w in enumerate(vocab)
        if len(w) >= MIN_CONTENT_LETTERS and w not in ENGLISH_STOP_WORDS
    ]
    return ids[:n]


def pca_2d(emb_NxD: np.ndarray) -> np.ndarray:
    """The first two principal components ``[N, 2]`` of unit-length, centred rows."""
    unit = emb_NxD / np.maximum(np.linalg.norm(emb_NxD, axis=1, keepdims=True), 1e-12)
    centred = unit - unit.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def plot_words(xy_Nx2: np.ndarray, words: list[str], path: pathlib.Path, title: str) -> None:
    """A labelled scatter of words in 2-D, as a PNG."""
    # The object API with the Agg canvas: no pyplot, no global backend state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 11))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(xy_Nx2[:, 0], xy_Nx2[:, 1], s=6, c="tab:blue", alpha=0.6)
    for (x, y), word in zip(xy_Nx2, words, strict=True):
        ax.annotate(word, (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
    ax.set_title(title)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    fig.savefig(path, dpi=90)


def evaluate_vectors(
    emb_VxD: np.ndarray, vocab: list[str], questions: dict, queries: list[int], k: int
) -> tuple[dict[str, float], dict[str, list]]:
    """Analogy accuracies and ``{query: [[neighbour, cosine], ...]}`` of one set of vectors."""
    accuracy = analogy_accuracy(emb_VxD, questions, vocab)
    neighbours = {
        vocab[q]: [[vocab[j], round(c, 4)] for j, c in found]
        for q, found in zip(queries, nearest(emb_VxD, queries, k), strict=True)
    }
    return accuracy, neighbours


def word2vec_report(
    emb_VxD: np.ndarray,
    data: Dataset,
    window: int,
    method: str,
    settings: ReportSettings,
    directory: pathlib.Path,
) -> dict:
    """Scores ``emb_VxD`` and the PPMI + SVD baseline (same rows, same window, same width).

    Returns:
      Flat finite floats: ``analogy_<relation>`` and ``analogy_overall`` (3CosAdd accuracy
      of the run's vectors), ``svd_analogy_...`` (the baseline's), ``questions_<relation>``
      and ``pairs_<relation>`` (test-set sizes).
    """
    directory = pathlib.Path(directory)
    vocab = list(data.info["vocab"])
    pairs = morphology_pairs(vocab[: settings.analogy_vocab])
    questions = make_analogies(pairs, settings.analogies_per_relation, settings.analogy_seed)
    counts_VxV = cooccurrence(data.train.x, window, len(vocab))
    svd_VxD = svd_embeddings(
        ppmi(counts_VxV, settings.ppmi_alpha), emb_VxD.shape[1], settings.analogy_seed
    )
    queries = content_words(vocab, settings.query_words)
    shown = content_words(vocab, settings.plot_words)
    figures, listing = {}, {}
    for label, prefix, vectors in ((method, "", emb_VxD), ("ppmi_svd", "svd_", svd_VxD)):
        accuracy, listing[label] = evaluate_vectors(
            vectors, vocab, questions, queries, settings.neighbours
        )
        figures.update({f"{prefix}analogy_{k}": float(v) for k, v in accuracy.items()})
        png = directory / ("embedding_pca.png" if not prefix else "svd_pca.png")
        title = f"{label}: PCA of the {len(shown)} most frequent content words"
        plot_words(pca_2d(vectors[shown]), [vocab[i] for i in shown], png, title)
    for name in sorted(pairs):
        figures[f"pairs_{name}"] = float(len(pairs[name]))
        figures[f"questions_{name}"] = float(len(questions[name]))
    listing["analogy_examples"] = {k: q[:EXAMPLE_QUESTIONS] for k, q in questions.items()}
    (directory / "neighbours.json").write_text(json.dumps(listing, indent=1) + "\n")
    return figures
