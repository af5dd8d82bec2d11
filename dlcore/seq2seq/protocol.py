"""The contract between sequence-to-sequence models, the decoders that run them, and the task.

Token convention (shared with the ``shapes`` captions): one vocabulary per data set, listed in
``info["vocab"]``, whose first three entries are ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2.

* Sources ``x``: token ids ``[N, S]`` padded with 0 (no ``<bos>``/``<eos>``), or any other
  input an encoder reads (an image ``[N, H, W, C]`` for captioning).
* Targets ``y`` (or the field a task names): ``<bos> w_1 ... w_n <eos>`` then 0s, ``[N, T]``.
  Teacher forcing feeds ``y[:, :-1]`` and predicts ``y[:, 1:]``; padded positions do not count.

A model is a Flax linen module with four methods, all pure:

* ``__call__(src, tgt_in_BxT, *, train) -> logits [B, T, V]`` - teacher-forced training pass.
* ``encode(src, *, train=False) -> memory`` - a pytree whose every leaf is ``[B, ...]``
  (encoder states, the key mask, ...).
* ``init_carry(memory) -> carry`` - the decoder's state before ``<bos>``; every leaf ``[B, ...]``
  with shapes that never change during decoding (a Transformer keeps a fixed-size cache).
* ``step(memory, carry, token_B) -> (carry, logits_BxV, aux)`` - one decoding step; ``aux`` is a
  dict of ``[B, ...]`` arrays with fixed shapes, e.g. ``{"attention": [B, S]}`` (may be empty).

``__call__`` must equal ``encode`` + ``init_carry`` + ``step`` run over ``tgt_in`` one token at a
time (``train=False``); every model's tests check it. Because every leaf of ``memory`` and
``carry`` has the batch first, a decoder can tile them for beam search and reorder them by
gathering rows, whatever the model is.

:class:`StepFns` is that interface with the parameters explicit, which is what the compiled
decoders in :mod:`dlcore.seq2seq.decode` take (static), so one decoder compiles once per shape.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")

Memory = Any
Carry = Any


@dataclasses.dataclass(frozen=True)
class StepFns:
    """A decoder as three pure functions of explicit parameters.

    Attributes:
      encode: ``(params, src) -> memory``.
      init_carry: ``(params, memory) -> carry``.
      step: ``(params, memory, carry, token_B) -> (carry, logits_BxV, aux)``.
    """

    encode: Callable
    init_carry: Callable
    step: Callable


def step_fns(model: nn.Module, extra_variables: dict | None = None) -> StepFns:
    """The :class:`StepFns` of a protocol module; ``params`` is its ``"params"`` collection.

    Args:
      model: a module with ``encode``, ``init_carry`` and ``step`` methods.
      extra_variables: other collections the module reads (e.g. ``batch_stats``), fixed.

    Example:
      >>> fns = step_fns(model)
      >>> memory = fns.encode(variables["params"], src)
    """
    extra = dict(extra_variables or {})

    def variables(params):
        return {"params": params, **extra}

    return StepFns(
        encode=lambda params, src: model.apply(variables(params), src, method=model.encode),
        init_carry=lambda params, memory: model.apply(
            variables(params), memory, method=model.init_carry
        ),
        step=lambda params, memory, carry, token_B: model.apply(
            variables(params), memory, carry, token_B, method=model.step
        ),
    )


def teacher_forcing(y_BxT: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(decoder inputs y[:, :-1], targets y[:, 1:], weights [B, T-1])``: a target position
    counts when it is not padding (every ``<eos>`` counts, so a model learns to stop)."""
    targets = y_BxT[:, 1:]
    return y_BxT[:, :-1], targets, (targets != PAD).astype(jnp.float32)


def source_mask(src_BxS: jax.Array) -> jax.Array:
    """``[B, S]`` True where a source token is real (not ``<pad>``)."""
    return src_BxS != PAD
