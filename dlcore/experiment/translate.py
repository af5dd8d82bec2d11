"""Decoding text with a trained seq2seq run (``dlcore translate``).

The input is encoded with the run's own vocabulary (one token per character, as the
character-level data sets of :mod:`dlcore.data.seq2seq_tasks` write their sources), decoded
greedily or by beam search, and written back as text. Several runs trained on the same data
decode as an ensemble: at every step their log-probabilities are averaged
(:func:`dlcore.seq2seq.decode.ensemble`).
"""

import dataclasses
import math
import pathlib

import jax.numpy as jnp
import numpy as np

from dlcore.runs.run_dir import RunDirError


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """One decoded output: its text and its score (the beam's length-normalised
    log-probability; the summed log-probability for greedy decoding)."""

    text: str
    score: float


def check_translate_args(text: str, beam: int | None, alpha: float | None) -> None:
    """One-line errors for bad settings, before any run is opened.

    Raises:
      ValueError: naming the setting, what it must be and what it got.
    """
    if not text:
        raise ValueError("the input text is empty; give the text to translate")
    if beam is not None and not 1 <= beam <= 64:
        raise ValueError(f"--beam must be in [1, 64]; got {beam}")
    if alpha is not None and not (math.isfinite(alpha) and 0 <= alpha <= 2):
        raise ValueError(f"--alpha must be in [0, 2]; got {alpha}")


def _open(run_dir):
    """The run's config and data (no state yet: bad input is refused before it loads)."""
    from dlcore.experiment.restore import restore_run
    from dlcore.tasks.seq2seq import Seq2seqTask

    restored = restore_run(run_dir, checkpoint=None)
    task, data = restored.experiment.task, restored.experiment.data
    x = data.train["x"]
    if not isinstance(task, Seq2seqTask) or x.ndim != 2 or data.info.get("level") != "char":
        raise RunDirError(
            f"{restored.run.path}: dlcore translate needs a seq2seq run on a character-level "
            f"text data set (reversal, sorting, dates, addition); got task "
            f"{restored.experiment.cfg.task.name!r} on {data.name!r}"
        )
    return restored, task, data


def translate_runs(
    run_dirs: list[str | pathlib.Path],
    text: str,
    beam: int | None = None,
    alpha: float | None = None,
    checkpoint: str = "latest",
) -> list[Hypothesis]:
    """The decoding of ``text`` by one run or by the ensemble of several.

    Args:
      run_dirs: one run directory, or several trained on the same data (an ensemble).
      text: the input, one character per token.
      beam: beam width K (None: greedy decoding).
      alpha: beam length-normalisation exponent (None: the first run's ``task.alpha``).
      checkpoint: ``"latest"`` or ``"best"``.

    Returns:
      One hypothesis (greedy) or the K beams, best first.

    Raises:
      ValueError: characters outside the vocabulary, or a text longer than the sources.
      RunDirError: a run that is not a character-level seq2seq run, or runs whose data differ.
    """
    from dlcore.data.seq2seq_tasks import decode_tokens, encode_sources
    from dlcore.experiment.restore import load_checkpoint
    from dlcore.seq2seq.beam import beam_search
    from dlcore.seq2seq.decode import ensemble, greedy

    check_translate_args(text, beam, alpha)
    opened = [_open(d) for d in run_dirs]
    first_task, first_data = opened[0][1], opened[0][2]
    vocab = tuple(first_data.info["vocab"])
    for restored, _, data in opened[1:]:
        if data.fingerprint() != first_data.fingerprint():
            raise RunDirError(
                f"{restored.run.path}: an ensemble needs runs on the same data; its "
                f"{data.name!r} data differ from those of {opened[0][0].run.path}"
            )
    width = first_data.train["x"].shape[1]
    try:
        src = jnp.asarray(encode_sources([text], vocab, width))
    except ValueError as err:
        raise ValueError(f"{err} (the run's data: {first_data.name})") from None
    max_len = first_data.train[first_task.target].shape[1] - 1
    states = [load_checkpoint(r.run, r.experiment, checkpoint)[0] for r, _, _ in opened]
    fns_list = [task.fns(s.model_state) for s, (_, task, _) in zip(states, opened, strict=True)]
    params = [s.params for s in states]
    if len(opened) == 1:
        fns, params = fns_list[0], params[0]
    else:
        fns, params = ensemble(fns_list), tuple(params)
    if beam is None:
        out = greedy(fns, params, src, max_len)
        return [Hypothesis(decode_tokens(out.tokens[0], vocab), float(out.log_prob[0]))]
    a = first_task.alpha if alpha is None else alpha
    out = beam_search(fns, params, src, beam, max_len, a)
    tokens, scores = np.asarray(out.tokens[0]), np.asarray(out.scores[0])
    return [
        Hypothesis(decode_tokens(t, vocab), float(s)) for t, s in zip(tokens, scores, strict=True)
    ]
