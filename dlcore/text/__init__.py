"""Word vectors: word2vec's pure functions, the PPMI + SVD baseline, analogy tests."""

from dlcore.text.analogies import (
    RELATIONS,
    analogy_accuracy,
    make_analogies,
    morphology_pairs,
    nearest,
    three_cos_add,
)
from dlcore.text.ppmi import cooccurrence, ppmi, svd_embeddings
from dlcore.text.word2vec import (
    all_contexts,
    cbow_loss,
    keep_probability,
    negative_sampling_loss,
    noise_distribution,
    noise_table,
    sample_contexts,
    skipgram_loss,
)

__all__ = [
    "RELATIONS",
    "all_contexts",
    "analogy_accuracy",
    "cbow_loss",
    "cooccurrence",
    "keep_probability",
    "make_analogies",
    "morphology_pairs",
    "nearest",
    "negative_sampling_loss",
    "noise_distribution",
    "noise_table",
    "ppmi",
    "sample_contexts",
    "skipgram_loss",
    "svd_embeddings",
    "three_cos_add",
]
