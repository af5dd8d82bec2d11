"""``dlcore viz RUN_DIR attention``: where a seq2seq run's model looks while it decodes.

The run's model decodes greedily (:func:`dlcore.seq2seq.decode.greedy`) and the step's
``aux["attention"]`` is drawn (:mod:`dlcore.viz.attention`):

* image sources (captioning, e.g. ``show_attend_tell`` on ``shapes`` scenes): scenes of
  ``--split`` from ``--index`` on, each word of the greedy caption with its attention over
  the image: ``attention_captions_<split><index>.png``;
* token sources (``reversal``, ``dates``...): the attention matrix, output tokens against
  source tokens, of ``--input "12 March 2019"`` (``attention_input.png``) or, without it, of
  a few examples (``attention_<split><index>.png``).

Everything is checked and drawn before :func:`dlcore.viz.from_run.visualize_run` writes.
"""

import dataclasses
import math
import pathlib

import jax.numpy as jnp
import numpy as np

from dlcore.runs.errors import RunDirError
from dlcore.seq2seq.protocol import PAD

EXAMPLES = {"image": 4, "text": 3}  # rows drawn without --input
SPACE = "\u2423"  # a visible space for tick labels


@dataclasses.dataclass(frozen=True)
class Seq2seqRun:
    """A restored seq2seq run: its task (model, vocabulary, target field), state and data."""

    path: pathlib.Path
    task: object
    params: dict
    model_state: dict
    data: object


def open_seq2seq_run(run_dir: str | pathlib.Path, checkpoint: str = "latest") -> Seq2seqRun:
    """The run's seq2seq model at a checkpoint.

    Raises:
      RunDirError: not a run, no checkpoint, or a run of another task.
    """
    from dlcore.experiment.restore import restore_run
    from dlcore.tasks.seq2seq import Seq2seqTask

    restored = restore_run(run_dir, checkpoint)
    task = restored.experiment.task
    if not isinstance(task, Seq2seqTask):
        raise RunDirError(
            f"{restored.run.path}: dlcore viz attention needs a run of the seq2seq task; "
            f"this run's task is {restored.experiment.cfg.task.name!r}"
        )
    state = restored.state
    return Seq2seqRun(
        restored.run.path, task, state.params, state.model_state, restored.experiment.data
    )


def greedy_attention(run: Seq2seqRun, src: np.ndarray):
    """Greedy decoding of ``src``: tokens ``[N, T]``, lengths ``[N]`` and attention ``[N, T, S]``.

    Raises:
      ValueError: if the model's decoding steps report no attention weights.
    """
    from dlcore.seq2seq.decode import greedy

    max_len = run.data.test[run.task.target].shape[1] - 1  # the targets' tokens after <bos>
    out = greedy(run.task.fns(run.model_state), run.params, jnp.asarray(src), max_len)
    # A model without attention reports none, or (rnn_seq2seq) all-zero weights.
    att = np.asarray(out.aux["attention"]) if "attention" in out.aux else np.zeros(1)
    if not np.any(att):
        raise ValueError(
            "the model has no attention to draw (its decoding steps report no attention "
            "weights); train one with attention, e.g. rnn_seq2seq with attention = 'general'"
        )
    return np.asarray(out.tokens), np.asarray(out.lengths), att


def feature_grid(locations: int, height: int, width: int) -> tuple[int, int]:
    """The ``(h, w)`` of an encoder's map with ``locations`` = h w cells over an H x W image
    (the same aspect ratio, as every 2x2 pool keeps it).

    Raises:
      ValueError: if no such grid exists.

    Example:
      >>> feature_grid(64, 32, 32)
      (8, 8)
    """
    h = max(1, round(math.sqrt(locations * height / width)))
    if locations % h:
        raise ValueError(
            f"cannot lay {locations} attention locations over a {height}x{width} image as a grid"
        )
    return h, locations // h


def _rows(run: Seq2seqRun, split: str, index: int, count: int) -> tuple[dict, range]:
    from dlcore.viz.from_run import SPLITS

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    rows = run.data.split(split)
    n = len(rows["x"])
    if not 0 <= index < n:
        raise ValueError(f"index {index} is out of range: the {split} split has {n} examples")
    return rows, range(index, min(index + count, n))


def _tokens(ids, vocab) -> list[str]:
    return [vocab[int(i)].replace(" ", SPACE) for i in ids]


def caption_pictures(run: Seq2seqRun, opts) -> tuple[dict[str, np.ndarray], list[str]]:
    """Scenes with each word's attention laid over them (see the module docstring)."""
    from dlcore.viz.attention import caption_attention_picture

    if opts.input is not None:
        raise ValueError(
            "--input is text, but this run's sources are images; pick scenes with "
            "--split and --index instead"
        )
    rows, picked = _rows(run, opts.split, opts.index, EXAMPLES["image"])
    images = np.asarray(rows["x"][picked.start : picked.stop], np.float32)
    tokens, lengths, att = greedy_attention(run, images)
    grid_hw = feature_grid(att.shape[-1], *images.shape[1:3])
    vocab = run.task.vocab
    captions, maps, refs, lines = [], [], [], []
    for n, i in enumerate(picked):
        words = _tokens(tokens[n, : lengths[n]], vocab)
        reference = _tokens(rows[run.task.target][i], vocab)
        reference = " ".join(w for w in reference if w not in ("<pad>", "<bos>", "<eos>"))
        captions.append(words)
        maps.append(att[n, : lengths[n]].reshape(-1, *grid_hw))
        refs.append(f"reference: {reference}")
        lines.append(f"{opts.split}{i}: {' '.join(words)!r} (reference {reference!r})")
    picture = caption_attention_picture(images, captions, maps, titles=refs)
    return {f"attention_captions_{opts.split}{opts.index}": picture}, lines


def text_pictures(run: Seq2seqRun, opts) -> tuple[dict[str, np.ndarray], list[str]]:
    """Attention matrices of ``opts.input`` or of a few examples (see the module docstring)."""
    from dlcore.data.seq2seq_tasks import encode_sources
    from dlcore.viz.attention import attention_matrix_picture

    vocab = run.task.vocab
    if opts.input is not None:
        if run.data.info.get("level") != "char":
            raise ValueError(
                f"--input needs a character-level data set; {run.data.name} is not one"
            )
        src = encode_sources([opts.input], vocab, run.data.test["x"].shape[1])
        stem, names = "attention_input", ["input"]
    else:
        rows, picked = _rows(run, opts.split, opts.index, EXAMPLES["text"])
        src = np.asarray(rows["x"][picked.start : picked.stop])
        stem, names = f"attention_{opts.split}{opts.index}", [f"{opts.split}{i}" for i in picked]
    tokens, lengths, att = greedy_attention(run, src)
    weights, sources, outputs, lines = [], [], [], []
    for n, name in enumerate(names):
        real = np.flatnonzero(src[n] != PAD)  # padded source positions get no weight
        sources.append(_tokens(src[n, real], vocab))
        outputs.append(_tokens(tokens[n, : lengths[n]], vocab))
        weights.append(att[n, : lengths[n]][:, real])
        shown = "".join(sources[-1]), "".join(o for o in outputs[-1] if o != "<eos>")
        lines.append(f"{name}: {shown[0]!r} -> {shown[1]!r}".replace(SPACE, " "))
    titles = [line.split(": ", 1)[1] for line in lines]
    picture = attention_matrix_picture(weights, sources, outputs, titles=titles)
    return {stem: picture}, lines


def attention_pictures(run: Seq2seqRun, opts) -> tuple[dict[str, np.ndarray], list[str]]:
    """The attention pictures of a seq2seq run: image sources get captions, tokens matrices."""
    images = run.data.test["x"].ndim == 4
    return (caption_pictures if images else text_pictures)(run, opts)
