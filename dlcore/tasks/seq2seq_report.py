"""What a seq2seq run reports when it ends: greedy and beam search on the test split.

* ``exact_match_greedy`` / ``exact_match_beam``: the share of test targets reproduced exactly
  (up to and including ``<eos>``), by greedy decoding and by the best beam.
* ``bleu_greedy`` / ``bleu_beam``: sacrebleu's corpus BLEU (0-100), with every vocabulary entry
  one token (a character of a character-level set, a word of a caption) and no further
  tokenisation.
* For token sources, ``exact_match_by_length.png`` and ``.json``: greedy exact match over the
  source length, the classic plot in which a model without attention falls off on long inputs.
"""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data.dataset import Dataset
from dlcore.engine.state import TrainState
from dlcore.seq2seq.beam import beam_search
from dlcore.seq2seq.decode import greedy
from dlcore.seq2seq.protocol import EOS, PAD, StepFns

_BATCH = 128  # test examples decoded at once; the last batch is padded to it (one compile)
_SPACE = "\u2581"  # a space character as a BLEU token (BLEU splits its input at spaces)


@functools.partial(jax.jit, static_argnames=("fns", "max_len"))
def _greedy_tokens(fns: StepFns, params, src, max_len: int):
    return greedy(fns, params, src, max_len).tokens


@functools.partial(jax.jit, static_argnames=("fns", "max_len", "beam", "alpha"))
def _beam_tokens(fns: StepFns, params, src, max_len: int, beam: int, alpha: float):
    out = beam_search(fns, params, src, beam, max_len, alpha)
    return out.tokens, out.scores


def decode_split(
    fns: StepFns,
    params,
    src_N: np.ndarray,
    max_len: int,
    beam: int | None = None,
    alpha: float = 0.6,
    batch: int = _BATCH,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Decodes every row of ``src_N`` (``[N, ...]``) in batches of ``batch``.

    Returns:
      greedy: ``(tokens [N, L], None)``; with ``beam``: ``(tokens [N, K, L], scores [N, K])``,
      the beams best first.
    """
    n = len(src_N)
    size = min(batch, n)
    tokens, scores = [], []
    for start in range(0, n, size):
        rows = src_N[start : start + size]
        padded = np.concatenate([rows, np.repeat(rows[:1], size - len(rows), axis=0)])
        if beam is None:
            tokens.append(np.asarray(_greedy_tokens(fns, params, jnp.asarray(padded), max_len)))
        else:
            t, s = _beam_tokens(fns, params, jnp.asarray(padded), max_len, beam, float(alpha))
            tokens.append(np.asarray(t))
            scores.append(np.asarray(s))
        tokens[-1] = tokens[-1][: len(rows)]
        if scores:
            scores[-1] = scores[-1][: len(rows)]
    return np.concatenate(tokens), (np.concatenate(scores) if scores else None)


def token_strings(ids_NxL: np.ndarray, vocab: tuple[str, ...]) -> list[str]:
    """Each row's tokens up to ``<eos>`` (specials dropped), joined by single spaces."""
    out = []
    for row in np.asarray(ids_NxL).tolist():
        words = []
        for i in row:
            if i == EOS:
                break
            if i > EOS:  # the specials come first
                words.append(vocab[i].replace(" ", _SPACE))
        out.append(" ".join(words))
    return out


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    """sacrebleu's corpus BLEU (0-100) of space-separated tokens, no re-tokenisation."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score)


def exact_by_length(lengths_N: np.ndarray, correct_N: np.ndarray) -> dict[int, tuple]:
    """``{source length: (exact match, examples)}`` over the lengths present."""
    return {
        int(k): (float(correct_N[lengths_N == k].mean()), int(np.sum(lengths_N == k)))
        for k in np.unique(lengths_N)
    }


def plot_by_length(curves: dict[str, dict], path: pathlib.Path, title: str) -> None:
    """One line per curve ``{label: {length: exact match}}``, written to ``path``."""
    # Imported here: matplotlib is slow to import and only the end of a run needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, curve in curves.items():
        lengths = sorted(curve)
        ax.plot(lengths, [curve[k] for k in lengths], "o-", label=label)
    ax.set(xlabel="source length (tokens)", ylabel="exact match (greedy)", ylim=(-0.02, 1.02))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def seq2seq_report(task, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
    """The figures of the module docstring for a finished run of ``task``."""
    from dlcore.tasks.seq2seq import sequences_match

    fns = task.fns(state.model_state)
    src, y = data.test["x"], data.test[task.target]
    targets = y[:, 1:]
    max_len = targets.shape[1]
    refs = token_strings(targets, task.vocab)
    greedy_ids, _ = decode_split(fns, state.params, src, max_len)
    beam_ids, _ = decode_split(fns, state.params, src, max_len, task.beam, task.alpha)
    best_ids = beam_ids[:, 0]
    report = {}
    for kind, ids in (("greedy", greedy_ids), ("beam", best_ids)):
        correct = np.asarray(sequences_match(jnp.asarray(ids), jnp.asarray(targets)))
        report[f"exact_match_{kind}"] = float(correct.mean())
        report[f"bleu_{kind}"] = corpus_bleu(token_strings(ids, task.vocab), refs)
        if kind == "greedy":
            correct_greedy = correct
    if src.ndim == 2 and np.issubdtype(src.dtype, np.integer):  # token sources
        lengths = (src != PAD).sum(axis=1)
        by_length = exact_by_length(lengths, correct_greedy)
        (directory / "exact_match_by_length.json").write_text(
            json.dumps(
                {str(k): {"exact_match": v, "examples": c} for k, (v, c) in by_length.items()}
            )
            + "\n"
        )
        curve = {k: v for k, (v, _) in by_length.items()}
        plot_by_length({data.name: curve}, directory / "exact_match_by_length.png", data.name)
    return report
