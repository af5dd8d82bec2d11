"""An analogy test set derived from a vocabulary's regular morphology, and its scoring.

Nothing is hand-picked: a *relation* is a list of suffix rules ``(strip, add)``; a word
``w`` ending in ``strip`` (and at least ``MIN_BASE`` letters long) pairs with
``w[:len(w) - len(strip)] + add`` whenever both are in the vocabulary. The questions of a
relation are the ordered pairs of its distinct word pairs, ``a : a' :: b : b'`` ("a' is
to a as b' is to b"), of which at most ``per_relation`` are drawn with ``seed``.

The pairs are sorted before drawing, so the test set depends on the *set* of vocabulary
words, the rules and the seed only: the same seed gives the same questions, and
reordering the vocabulary changes nothing (ids differ, words do not).

Scoring is 3CosAdd (Mikolov et al. 2013c): the answer is
``argmax_x cos(x, a' - a + b)`` over unit-length word vectors, the three question words
excluded; accuracy is the fraction of questions answered ``b'``.
"""

import numpy as np

MIN_BASE = 3
# relation -> its (strip, add) suffix rules
RELATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "s": (("", "s"), ("", "es"), ("y", "ies")),  # file:files, class:classes, entry:entries
    "ed": (("", "ed"), ("e", "ed")),  # return:returned, use:used
    "ing": (("", "ing"), ("e", "ing")),  # return:returning, use:using
    "ly": (("", "ly"),),  # exact:exactly
}


def morphology_pairs(vocab, relations=RELATIONS) -> dict[str, list[tuple[str, str]]]:
    """``{relation: sorted (base, derived) pairs}`` of words both in ``vocab``.

    Example:
      >>> morphology_pairs(["use", "used", "file", "files", "us"])
      {'s': [('file', 'files')], 'ed': [('use', 'used')], 'ing': [], 'ly': []}
    """
    words = set(vocab)
    pairs = {}
    for name, rules in relations.items():
        found = set()
        for word in words:
            for strip, add in rules:
                if len(word) >= MIN_BASE and word.endswith(strip):
                    derived = word[: len(word) - len(strip)] + add
                    if derived in words and derived != word:
                        found.add((word, derived))
        pairs[name] = sorted(found)
    return pairs


def make_analogies(
    pairs: dict[str, list[tuple[str, str]]], per_relation: int, seed: int
) -> dict[str, list[tuple[str, str, str, str]]]:
    """At most ``per_relation`` questions ``(a, a', b, b')`` per relation, drawn without
    replacement from the ordered pairs of distinct word pairs and listed in that order.

    Args:
      pairs: from :func:`morphology_pairs` (each list sorted).
      per_relation: the cap per relation.
      seed: which questions a capped relation keeps.
    """
    rng = np.random.default_rng(seed)
    questions = {}
    for name in sorted(pairs):
        rel = pairs[name]
        n = len(rel)
        total = n * (n - 1)  # ordered (i, j), i != j, numbered i (n - 1) + j'
        picks = np.sort(rng.choice(total, min(per_relation, total), replace=False))
        i, j = np.divmod(picks, max(n - 1, 1))
        j = j + (j >= i)  # j' skips i
        questions[name] = [(*rel[a], *rel[b]) for a, b in zip(i.tolist(), j.tolist(), strict=True)]
    return questions


def unit_rows(emb_VxD: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    emb_VxD = np.asarray(emb_VxD, np.float64)
    norms = np.linalg.norm(emb_VxD, axis=1, keepdims=True)
    return emb_VxD / np.maximum(norms, 1e-12)


def three_cos_add(emb_VxD: np.ndarray, questions_Qx4: np.ndarray, chunk: int = 512) -> np.ndarray:
    """3CosAdd answers ``[Q]``: ``argmax_x cos(x, a' - a + b)``, x not in {a, a', b}.

    Args:
      emb_VxD: word vectors.
      questions_Qx4: ids ``(a, a', b, b')`` per row (only the first three are read).
    """
    unit = unit_rows(emb_VxD)
    answers = []
    for start in range(0, len(questions_Qx4), chunk):
        q = np.asarray(questions_Qx4[start : start + chunk])
        target_QxD = unit[q[:, 1]] - unit[q[:, 0]] + unit[q[:, 2]]
        # the target's own length is the same for every x, so it does not change argmax
        scores_QxV = target_QxD @ unit.T
        rows = np.arange(len(q))[:, None]
        scores_QxV[rows, q[:, :3]] = -np.inf
        answers.append(np.argmax(scores_QxV, axis=1))
    return np.concatenate(answers) if answers else np.zeros(0, np.int64)


def analogy_accuracy(
    emb_VxD: np.ndarray, questions: dict[str, list[tuple[str, ...]]], vocab
) -> dict[str, float]:
    """3CosAdd accuracy per relation (relations without questions left out) and
    ``"overall"`` (over all questions; 0 when there are none)."""
    index = {w: i for i, w in enumerate(vocab)}
    correct, total = {}, 0
    for name, qs in questions.items():
        if not qs:
            continue
        ids_Qx4 = np.array([[index[w] for w in q] for q in qs])
        correct[name] = int(np.sum(three_cos_add(emb_VxD, ids_Qx4) == ids_Qx4[:, 3]))
        total += len(qs)
    out = {name: c / len(questions[name]) for name, c in correct.items()}
    out["overall"] = sum(correct.values()) / total if total else 0.0
    return out


def nearest(emb_VxD: np.ndarray, ids, k: int) -> list[list[tuple[int, float]]]:
    """The ``k`` nearest words (cosine) of each id, itself excluded: ``[(id, cos), ...]``."""
    unit = unit_rows(emb_VxD)
    out = []
    for i in ids:
        cos_V = unit @ unit[i]
        cos_V[i] = -np.inf
        top = np.argsort(-cos_V, kind="stable")[:k]
        out.append([(int(j), float(cos_V[j])) for j in top])
    return out
