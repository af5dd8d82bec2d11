"""word2vec as a task of the generic loop: skip-gram or CBOW with negative sampling.

The math lives in :mod:`dlcore.text.word2vec`; this task owns the two embedding tables
(``params = {"input": u [V, D], "output": v [V, D]}``, no ``[model]`` section) and one
optax chain. A batch is ``B`` context rows of the ``stdlib_words`` data set
(``x [B, 2C + 1]``, centre word in the middle); one compiled step

1. draws, from ``state.step_key``, the subsampling of every word of the rows, each
   centre's dynamic window ``b ~ U{1..window}`` and ``negatives`` noise words per pair
   (skip-gram) or per centre (CBOW) from the unigram^0.75 noise table,
2. takes one gradient step on the mean negative-sampling loss of the batch's pairs
   (skip-gram) or centres (CBOW).

All randomness is a function of (seed, step), so a run is reproducible and resumes
exactly. Metric ``loss``: the mean loss per pair (skip-gram) or per centre (CBOW). In
training it is over the sampled pairs; on held-out text (val, test) over every pair
within ``window`` with no subsampling and noise words from a fixed key, so it is a
deterministic function of the parameters. The report (:mod:`dlcore.tasks.word2vec_report`)
scores the input vectors ``u`` and compares them with a PPMI + SVD baseline.
"""

import dataclasses
import pathlib
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import Field, PositiveInt

from dlcore.config.errors import FieldError
from dlcore.config.section import one_of
from dlcore.data.dataset import Dataset
from dlcore.data.needs import Need
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.word2vec_report import ReportSettings, word2vec_report
from dlcore.text.word2vec import (
    all_contexts,
    cbow_loss,
    init_embeddings,
    keep_probability,
    noise_table,
    sample_contexts,
    skipgram_loss,
)

METHODS = ("skipgram", "cbow")
# fold_in constant of the held-out noise words: eval must be a pure function of the state
EVAL_STREAM = 7321


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: array fields, hashed by identity
class Word2VecTask(TaskDefaults):
    """Skip-gram or CBOW with negative sampling (see the module docstring).

    Attributes:
      method: ``"skipgram"`` or ``"cbow"``.
      vocab_size: ``V``.
      dim: embedding width ``D``.
      window: the largest dynamic window ``W`` (<= the rows' ``C``).
      negatives: noise words ``k`` per pair (skip-gram) or per centre (CBOW).
      optimizer: the optax chain of both tables.
      table_T: the noise table (word ids).
      keep_V: subsampling keep probability per word.
      report_settings: what :meth:`report` evaluates.

    Example:
      >>> task = Word2VecTask("skipgram", 50, 8, 2, 3, optax.adam(1e-2),
      ...                     noise_table(counts_V, 1000), keep_probability(counts_V, 1e-3))
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_BxW})
      >>> state, sums = jax.jit(task.train_step)(state, {"x": x_BxW})
    """

    method: str
    vocab_size: int
    dim: int
    window: int
    negatives: int
    optimizer: optax.GradientTransformation
    table_T: np.ndarray
    keep_V: np.ndarray
    report_settings: ReportSettings = ReportSettings()
    metric_modes: dict[str, Mode] = dataclasses.field(default_factory=lambda: {"loss": "min"})
    default_metric: str = "loss"

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        del batch  # the tables' shapes come from the vocabulary
        k_emb, k_state = jax.random.split(rng)
        params = init_embeddings(k_emb, self.vocab_size, self.dim)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state={},
            opt_state=self.optimizer.init(params),
            rng=k_state,
        )

    def loss_sums(self, params, x_BxW, key, row_mask_B=None) -> tuple[jax.Array, jax.Array]:
        """``(sum of losses, number of pairs or centres)`` of a batch; ``row_mask_B=None``
        samples pairs as in training, otherwise every pair of the masked rows is used."""
        k_pairs, k_noise = jax.random.split(key)
        if row_mask_B is None:
            centre_B, ctx_BxS, use_BxS = sample_contexts(
                k_pairs, x_BxW, jnp.asarray(self.keep_V, jnp.float32), self.window
            )
        else:
            centre_B, ctx_BxS, use_BxS = all_contexts(x_BxW, self.window)
            use_BxS = use_BxS & (row_mask_B[:, None] > 0)
        shape = ctx_BxS.shape if self.method == "skipgram" else ctx_BxS.shape[:1]
        slots = jax.random.randint(k_noise, (*shape, self.negatives), 0, len(self.table_T))
        noise = jnp.asarray(self.table_T)[slots]
        loss = skipgram_loss if self.method == "skipgram" else cbow_loss
        return loss(params, centre_B, ctx_BxS, use_BxS, noise)

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        key = state.step_key("word2vec")

        def objective(params):
            total, count = self.loss_sums(params, batch["x"], key)
            return total / jnp.maximum(count, 1.0), (total, count)

        grads, (total, count) = jax.grad(objective, has_aux=True)(state.params)
        new_state = apply_gradients(state, self.optimizer, grads)
        return new_state.replace(step=state.step + 1), {"loss": total, "count": count}

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        x_BxW = batch["x"]
        mask_B = batch.get("mask", jnp.ones(x_BxW.shape[0], jnp.float32))
        key = jax.random.fold_in(state.rng, EVAL_STREAM)
        total, count = self.loss_sums(state.params, x_BxW, key, mask_B)
        return {"loss": total, "count": count}

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """Neighbours, morphology analogies and PCA plots of ``u`` and of the PPMI + SVD
        baseline; see :func:`dlcore.tasks.word2vec_report.word2vec_report`."""
        emb_VxD = np.asarray(state.params["input"], np.float64)
        return word2vec_report(
            emb_VxD, data, self.window, self.method, self.report_settings, directory
        )


class Word2VecConfig(TaskSection):
    """word2vec (skip-gram or CBOW, negative sampling) on context rows of word ids; it owns
    its embedding tables, so there is no ``[model]`` section; ``[optimizer]`` trains them."""

    model_roles: ClassVar[tuple[str, ...]] = ()

    name: Literal["word2vec"] = "word2vec"
    method: one_of(METHODS, "word2vec method") = Field("skipgram", description="skipgram or cbow")
    dim: PositiveInt = Field(100, description="embedding width D")
    window: PositiveInt = Field(5, description="largest dynamic window (<= data.context)")
    negatives: PositiveInt = Field(5, description="noise words per pair (per centre for CBOW)")
    subsample: float = Field(1e-3, ge=0.0, lt=1.0, description="threshold t; 0 keeps every word")
    noise_power: float = Field(0.75, ge=0.0, le=1.0, description="noise ~ count^noise_power")
    table_size: int = Field(1_000_000, ge=1000, le=100_000_000, description="noise table slots")
    query_words: PositiveInt = Field(10, description="frequent words whose neighbours are listed")
    neighbours: PositiveInt = Field(8, description="neighbours listed per query word")
    analogies_per_relation: PositiveInt = Field(1000, description="questions kept per relation")
    analogy_seed: int = Field(0, ge=0, lt=2**32, description="which questions are kept")
    analogy_vocab: int = Field(1000, ge=2, description="questions use the N most frequent words")
    plot_words: int = Field(150, ge=2, description="words in the 2-D PCA plots")
    ppmi_alpha: float = Field(0.75, gt=0.0, le=1.0, description="context smoothing of PPMI")

    def needs(self) -> tuple[Need, ...]:
        return (
            Need(
                "x",
                ("tokens",),
                "rows of word ids [2C + 1], the centre word in the middle (stdlib_words)",
                (1,),
            ),
        )

    def build(self, ctx: BuildContext) -> Word2VecTask:
        info = ctx.data.info
        if "counts" not in info or "context" not in info:
            raise FieldError(
                "task.name",
                f"word2vec needs word counts and context rows; {ctx.data.name} has none "
                "(use data.name = 'stdlib_words')",
            )
        if self.window > info["context"]:
            raise FieldError(
                "task.window",
                f"{self.window} is wider than the data's {info['context']} stored neighbours "
                "per side; lower task.window or raise data.context",
            )
        counts_V = np.asarray(info["counts"], np.int64)
        return Word2VecTask(
            method=self.method,
            vocab_size=len(counts_V),
            dim=self.dim,
            window=self.window,
            negatives=self.negatives,
            optimizer=ctx.optimizer(),
            table_T=noise_table(counts_V, self.table_size, self.noise_power),
            keep_V=keep_probability(counts_V, self.subsample).astype(np.float32),
            report_settings=ReportSettings(
                query_words=self.query_words,
                neighbours=self.neighbours,
                analogies_per_relation=self.analogies_per_relation,
                analogy_seed=self.analogy_seed,
                analogy_vocab=self.analogy_vocab,
                plot_words=self.plot_words,
                ppmi_alpha=self.ppmi_alpha,
            ),
        )
