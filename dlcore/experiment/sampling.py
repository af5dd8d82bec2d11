"""Sampling text from a trained character-level language model (``dlcore sample``).

The prompt is read in one pass of the recurrent stack; then one ``lax.scan`` step per new
character feeds the last sample back in with the carried state. Every random draw uses
``fold_in(key, t)``, so the text is a pure function of (checkpoint, prompt, settings, seed).

    p(c | history) ∝ exp(s_c / τ)   over the k highest scores s_c (all if top_k is None)

τ = 0 means greedy decoding (always the arg-max).
"""

import functools
import math
import pathlib

import jax
import jax.numpy as jnp

from dlcore.config.section import SEED_LIMIT
from dlcore.runs.run_dir import RunDirError


def filter_logits(logits_BxV: jax.Array, temperature: float, top_k: int | None) -> jax.Array:
    """Scores divided by τ, with everything below the k-th largest set to −∞."""
    if top_k is not None:
        kth_Bx1 = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
        logits_BxV = jnp.where(logits_BxV < kth_Bx1, -jnp.inf, logits_BxV)
    return logits_BxV / temperature if temperature > 0 else logits_BxV


def sample_token(
    key: jax.Array, logits_BxV: jax.Array, temperature: float, top_k: int | None
) -> jax.Array:
    """One token id per row, ``[B]``: a draw from the filtered softmax, or arg-max if τ = 0."""
    if temperature == 0:
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    logits_BxV = filter_logits(logits_BxV, temperature, top_k)
    return jax.random.categorical(key, logits_BxV, axis=-1).astype(jnp.int32)


def check_sampling_args(
    length: int, temperature: float, top_k: int | None, vocab: int | None = None, seed: int = 0
) -> None:
    """One-line errors for bad sampling settings (before anything is compiled).

    Args:
      length, temperature, top_k, seed: the settings (see the module docstring).
      vocab: the vocabulary size that bounds ``top_k``, or None before it is known.

    Raises:
      ValueError: naming the setting, what it must be and what it got.
    """
    if length < 1:
        raise ValueError(f"length must be a positive number of characters; got {length}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be >= 0 and finite (0 = greedy); got {temperature}")
    if top_k is not None and vocab is not None and not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be in [1, {vocab}] (the vocabulary size); got {top_k}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1; got {top_k}")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be in [0, 2**32); got {seed}")


@functools.partial(jax.jit, static_argnames=("model", "length", "temperature", "top_k"))
def generate(
    model,
    params,
    prompt_ids_P: jax.Array,
    key: jax.Array,
    *,
    length: int,
    temperature: float,
    top_k: int | None = None,
) -> jax.Array:
    """``length`` new token ids ``[length]`` continuing the (non-empty) prompt.

    Args:
      model: a unidirectional per-step model called as
        ``model(x, train=False, carry=..., return_carry=True) -> (carries, logits)``.
      params: its parameters.
      prompt_ids_P: int ``[P]`` prompt ids, P >= 1.
      key: PRNG key; step t draws with ``fold_in(key, t)``.
      length, temperature, top_k: see the module docstring.

    Example:
      >>> ids = generate(model, params, jnp.array([3, 4]), jax.random.key(0), length=20,
      ...                temperature=0.8, top_k=5)
    """
    variables = {"params": params}
    carry, logits_1xPxV = model.apply(
        variables, prompt_ids_P[None, :], train=False, return_carry=True
    )

    def step(state, t):
        carry, logits_1xV = state
        token_1 = sample_token(jax.random.fold_in(key, t), logits_1xV, temperature, top_k)
        carry, logits_1x1xV = model.apply(
            variables, token_1[:, None], train=False, carry=carry, return_carry=True
        )
        return (carry, logits_1x1xV[:, 0]), token_1[0]

    _, ids = jax.lax.scan(step, (carry, logits_1xPxV[:, -1]), jnp.arange(length))
    return ids


def sample_run(
    run_dir: str | pathlib.Path,
    prompt: str = "def ",
    length: int = 500,
    temperature: float = 0.8,
    top_k: int | None = None,
    seed: int = 0,
    checkpoint: str = "latest",
) -> str:
    """Generated text (without the prompt) from a language-model run's checkpoint.

    Raises:
      RunDirError: if the run is not a character-level LM or has no checkpoint.
      ValueError: for bad sampling settings.
    """
    from dlcore.data.stdlib_text import decode, encode
    from dlcore.experiment.restore import restore_run

    check_sampling_args(length, temperature, top_k, seed=seed)  # before the slow part
    restored = restore_run(run_dir, checkpoint)  # the vocabulary comes from the rebuilt data
    run, experiment = restored.run, restored.experiment
    vocab = experiment.data.info.get("vocab")
    model = getattr(experiment.task, "model", None)  # tasks without one cannot generate
    if vocab is None or model is None or getattr(model, "readout", None) != "all":
        raise RunDirError(
            f"{run.path}: dlcore sample needs a character-level language model run "
            f"(a text data set and an rnn model with readout = 'all'); got data "
            f"{experiment.cfg.data.name!r}"
        )
    if model.bidirectional:
        raise RunDirError(f"{run.path}: a bidirectional model cannot generate left to right")
    check_sampling_args(length, temperature, top_k, len(vocab), seed)
    prompt_ids = encode(prompt or "\n", vocab)  # an empty prompt starts at a line break
    ids = generate(
        model,
        restored.state.params,
        jnp.asarray(prompt_ids),
        jax.random.PRNGKey(seed),
        length=length,
        temperature=float(temperature),
        top_k=top_k,
    )
    return decode(jax.device_get(ids), vocab)
