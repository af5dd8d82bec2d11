"""Sequence to sequence: an encoder–decoder trained by teacher forcing, scored by decoding.

The model is a protocol module (:mod:`dlcore.seq2seq.protocol`): ``model(src, tgt_in, train)
-> logits [B, T-1, V]`` plus ``encode`` / ``init_carry`` / ``step``. With the target
``y = <bos> w_1 ... w_n <eos> 0 ...`` it reads ``y[:, :-1]`` and predicts ``y[:, 1:]``; a
position counts when its target is not ``<pad>`` (``w_{bt}``, times the example mask):

    loss           = Σ w_{bt} CE(q_{bt}, p_{bt}) / Σ w_{bt}
    q_{bt}         = (1 - ε) onehot(y_{b,t+1}) + ε / V          (label smoothing ε)
    token_accuracy = Σ w_{bt} [argmax p_{bt} = y_{b,t+1}] / Σ w_{bt}
    exact_match    = Σ_b m_b [greedy(x_b) = y_b up to and including <eos>] / Σ_b m_b

``exact_match`` decodes greedily (:func:`dlcore.seq2seq.decode.greedy`, compiled inside the
eval step) for at most ``T - 1`` tokens. The sums carry two counts: ``count`` (target tokens)
for the per-token means and ``examples`` for the per-example one; :meth:`Seq2seqTask.summarize`
divides each by its own.
"""

import dataclasses
import pathlib
from typing import ClassVar, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import Field

from dlcore.config.errors import FieldError
from dlcore.data.dataset import Dataset
from dlcore.data.needs import Need
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.seq2seq.decode import greedy
from dlcore.seq2seq.protocol import EOS, PAD, StepFns, step_fns, teacher_forcing
from dlcore.tasks.context import BuildContext, TaskSection


def token_sums(
    logits_BxTxV: jax.Array, targets_BxT: jax.Array, w_BxT: jax.Array, label_smoothing: float
) -> tuple[jax.Array, Metrics]:
    """The mean (smoothed) cross-entropy over counted positions, and the per-token sums.

    Raises:
      ValueError: when the logits are not ``[B, T, V]`` over the targets' ``[B, T]``.
    """
    if logits_BxTxV.shape[:2] != targets_BxT.shape:
        raise ValueError(
            f"seq2seq logits must be [B, T, V] with [B, T] = the shifted targets' shape "
            f"{targets_BxT.shape}; got {logits_BxTxV.shape}"
        )
    vocab = logits_BxTxV.shape[-1]
    q_BxTxV = optax.smooth_labels(jax.nn.one_hot(targets_BxT, vocab), label_smoothing)
    ce_BxT = optax.softmax_cross_entropy(logits_BxTxV, q_BxTxV)
    correct_BxT = (jnp.argmax(logits_BxTxV, axis=-1) == targets_BxT).astype(jnp.float32)
    count = jnp.sum(w_BxT)
    loss_sum = jnp.sum(ce_BxT * w_BxT)
    sums = {"loss": loss_sum, "token_accuracy": jnp.sum(correct_BxT * w_BxT), "count": count}
    return loss_sum / jnp.maximum(count, 1.0), sums


def clip_at_eos(tokens_BxL: jax.Array) -> jax.Array:
    """``tokens`` with every position after the first ``<eos>`` set to ``<pad>``."""
    is_eos = tokens_BxL == EOS
    after_BxL = (jnp.cumsum(is_eos, axis=1) - is_eos) > 0
    return jnp.where(after_BxL, PAD, tokens_BxL)


def sequences_match(tokens_BxL: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """1.0 where a decoded row equals its target up to and including ``<eos>``, ``[B]``.

    ``tokens`` are decoded ids without ``<bos>``; whatever follows their first ``<eos>`` is
    ignored. ``targets`` are ``y[:, 1:]`` (``w_1 ... w_n <eos>`` then 0s). A row that never
    emits ``<eos>`` where the target has it does not match.
    """
    tokens_BxL = clip_at_eos(tokens_BxL)
    width = max(tokens_BxL.shape[1], targets_BxT.shape[1])

    def widen(a):
        return jnp.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=PAD)

    return jnp.all(widen(tokens_BxL) == widen(targets_BxT), axis=1).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class Seq2seqTask(TaskDefaults):
    """Teacher-forced cross-entropy training; exact match by greedy decoding in evaluation.

    Attributes:
      model: a protocol module (see the module docstring).
      optimizer: the optax chain.
      vocab: the target vocabulary (``info["vocab"]``), for the report's BLEU.
      target: the batch field of the targets (``"y"``; a captioning set's ``"caption"``).
      label_smoothing: ε of the smoothed targets (0 = plain cross-entropy).
      beam, alpha: beam width and length-normalisation exponent of the report's beam search.

    Example:
      >>> task = Seq2seqTask(model, optax.adam(3e-3), vocab=tuple(data.info["vocab"]))
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_BxS, "y": y_BxT})
      >>> state, sums = jax.jit(task.train_step)(state, {"x": x_BxS, "y": y_BxT})
    """

    model: nn.Module
    optimizer: optax.GradientTransformation
    vocab: tuple[str, ...] = ()
    target: str = "y"
    label_smoothing: float = 0.0
    beam: int = 4
    alpha: float = 0.6
    default_metric: str = "exact_match"
    metric_modes: ClassVar[dict[str, Mode]] = {
        "loss": "min",
        "token_accuracy": "max",
        "exact_match": "max",
    }

    def fns(self, model_state: dict | None = None) -> StepFns:
        """The model as :class:`StepFns` (``params`` explicit, other collections fixed)."""
        return step_fns(self.model, model_state)

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        k_params, k_dropout, k_state = jax.random.split(rng, 3)
        tgt_in = batch[self.target][:, :-1]
        variables = dict(
            self.model.init(
                {"params": k_params, "dropout": k_dropout}, batch["x"], tgt_in, train=False
            )
        )
        params = variables.pop("params")
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state=variables,
            opt_state=self.optimizer.init(params),
            rng=k_state,
        )

    def _logits(self, params, model_state: dict, src, tgt_in, dropout_key):
        """Teacher-forced logits and the (training-mode updated) non-trainable collections."""
        variables = {"params": params, **model_state}
        if dropout_key is None:
            return self.model.apply(variables, src, tgt_in, train=False), model_state
        rngs = {"dropout": dropout_key}
        if not model_state:
            return self.model.apply(variables, src, tgt_in, train=True, rngs=rngs), model_state
        out, updated = self.model.apply(
            variables, src, tgt_in, train=True, rngs=rngs, mutable=list(model_state)
        )
        return out, dict(updated)

    def _weights(self, batch: Batch):
        tgt_in, targets, w_BxT = teacher_forcing(batch[self.target])
        if "mask" in batch:
            w_BxT = w_BxT * batch["mask"][:, None].astype(jnp.float32)
        return tgt_in, targets, w_BxT

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        tgt_in, targets, w_BxT = self._weights(batch)
        key = state.step_key("dropout")

        def objective(params):
            logits, model_state = self._logits(params, state.model_state, batch["x"], tgt_in, key)
            loss, sums = token_sums(logits, targets, w_BxT, self.label_smoothing)
            return loss, (sums, model_state)

        grads, (sums, model_state) = jax.grad(objective, has_aux=True)(state.params)
        state = apply_gradients(state, self.optimizer, grads)
        return state.replace(step=state.step + 1, model_state=model_state), sums

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        tgt_in, targets, w_BxT = self._weights(batch)
        logits, _ = self._logits(state.params, state.model_state, batch["x"], tgt_in, None)
        sums = token_sums(logits, targets, w_BxT, self.label_smoothing)[1]
        decoded = greedy(self.fns(state.model_state), state.params, batch["x"], targets.shape[1])
        mask_B = batch.get("mask", jnp.ones(targets.shape[0], jnp.float32)).astype(jnp.float32)
        sums["exact_match"] = jnp.sum(sequences_match(decoded.tokens, targets) * mask_B)
        sums["examples"] = jnp.sum(mask_B)
        return sums

    def summarize(self, metric_sums: dict, training_window: bool) -> dict:
        """Per-token means over ``count``; exact match per example over ``examples``."""
        del training_window  # nothing is a total
        tokens = max(float(np.asarray(metric_sums["count"])), 1e-12)
        out = {k: float(np.asarray(metric_sums[k])) / tokens for k in ("loss", "token_accuracy")}
        if "exact_match" in metric_sums:  # evaluation passes decode; training steps do not
            examples = max(float(np.asarray(metric_sums["examples"])), 1e-12)
            out["exact_match"] = float(np.asarray(metric_sums["exact_match"])) / examples
        return out

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """Greedy and beam-search exact match and BLEU on the test split, and (token
        sources) ``exact_match_by_length.png`` / ``.json`` (see
        :mod:`dlcore.tasks.seq2seq_report`)."""
        from dlcore.tasks.seq2seq_report import seq2seq_report

        return seq2seq_report(self, state, data, directory)


TARGET_TOKENS = "target tokens [T]: <bos> ... <eos> then 0 (dlcore.seq2seq.protocol)"


class Seq2seqConfig(TaskSection):
    """Encoder–decoder on (source, target tokens): teacher-forced cross-entropy; token
    accuracy, exact match (greedy) and, after the run, BLEU of greedy and beam search."""

    name: Literal["seq2seq"] = "seq2seq"
    target: str = Field("y", min_length=1, description="the field of the target tokens")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="ε of smoothed targets")
    beam: int = Field(4, ge=1, le=64, description="beam width of the report's beam search")
    alpha: float = Field(0.6, ge=0.0, le=2.0, description="beam length normalisation exponent")

    def needs(self) -> tuple[Need, ...]:
        return (Need(self.target, ("tokens",), TARGET_TOKENS, (1,)),)

    def build(self, ctx: BuildContext) -> Seq2seqTask:
        vocab = ctx.data.info.get("vocab")
        if not vocab:
            raise FieldError(
                "task.name", f"seq2seq needs a data set with a vocabulary; {ctx.data.name} has none"
            )
        model = ctx.model(len(vocab))
        return Seq2seqTask(
            model,
            ctx.optimizer(),
            tuple(vocab),
            self.target,
            self.label_smoothing,
            self.beam,
            self.alpha,
        )
