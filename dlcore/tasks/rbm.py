"""Restricted Boltzmann machines trained by CD-k or persistent CD, and stacks of them.

The math is :mod:`dlcore.energy.rbm`. Each update draws the chains' noise from
``state.step_key("gibbs")``, computes the positive statistics on the batch and the
negative ones after k Gibbs steps, and feeds their difference to the ``[optimizer]`` chain
AS A GRADIENT (:func:`dlcore.energy.rbm.cd_gradient`), so SGD, momentum and weight decay
all come from the config. CD-k (``method = "cd"``) starts its chains at the batch; PCD-k
(``"pcd"``) continues ``chains`` persistent chains whose hidden states live in
``state.model_state["chains"]``, checkpointed with everything else, so a resumed run
continues them exactly.

A stack (the deep belief net, :mod:`dlcore.tasks.dbn`) trains layer l on the mean-field
activations p(h | .) of the layers below (deterministic, as in Hinton & Salakhutdinov
2006's code); an RBM is a stack of one. Layer l's visible units are the data's (Bernoulli
or Gaussian) for l = 0 and Bernoulli above. Staging is :mod:`dlcore.tasks.greedy`'s: update
t trains layer min(floor(t / S), L - 1); every other layer gets exactly zero change.

Parameters use the ``mlp`` model's names, so a classifier warm-starts from them::

    params = {"encoder": {"Dense_l": {"kernel": W_l [V_l, H_l], "bias": c_l [H_l]}},
              "visible_bias": {"Dense_l": b_l [V_l]}}

    [init]   # in an mlp run with activation = "sigmoid" and widths = the stack's widths
    run = "<this run>"
    map = { "" = "encoder" }
    exclude = ["Dense_<L>"]     # the classifier's head
    allow_unused = true         # the visible biases

Metrics (sums over examples, reported per example): ``recon_mse`` (mean over units of the
squared error of the mean-field reconstruction E[v | p(h | v)]) and ``free_energy`` F(v),
both of the layer being trained, on its input; validation adds ``pll``, the EXACT
pseudo-log-likelihood of the bottom layer summed over all V bits (Bernoulli visible units
only), and, for stacks, ``layer``, ``recon_mse_l`` of every layer and ``stack_recon_mse``
(the input through every layer up and back down, mean-field).
"""

import dataclasses
import math
import pathlib
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import optax
from pydantic import Field, PositiveInt, model_validator

from dlcore.config.section import one_of
from dlcore.data.dataset import Dataset
from dlcore.data.needs import Need
from dlcore.energy import rbm
from dlcore.engine.state import TrainState
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.greedy import active_layer, greedy_update, layer_ids

METHODS = ("cd", "pcd")


def _name(layer: int) -> str:
    return f"Dense_{layer}"  # the mlp model's name of its layer-th dense layer


@dataclasses.dataclass(frozen=True)
class RBMTask(TaskDefaults):
    """A stack of RBMs trained greedily by CD-k / PCD-k (see the module docstring).

    Attributes:
      widths: hidden widths H_1..H_L (one entry: a single RBM).
      optimizer: the chain the CD gradient is fed to (only the active layer moves).
      method: ``"cd"`` or ``"pcd"``.
      k: Gibbs steps per update.
      visible: the bottom layer's visible units, ``"bernoulli"`` or ``"gaussian"``.
      chains: PCD's persistent chains per layer (CD uses the batch's size).
      init_scale: std of the initial weights (biases start at 0), as scikit-learn's 0.01.
      steps_per_layer: S, updates per layer's stage (stacks only).
      restart_optimizer: fresh optimizer state at each stage start (stacks only).
      sample_steps: Gibbs steps between two rows of the report's samples.
      image_shape: how to draw one input in ``report``; None skips the images.

    Example:
      >>> task = RBMTask((100,), optax.sgd(0.05), method="pcd", chains=20)
      >>> state = task.init(jax.random.PRNGKey(0), {"x": x_Bx64})
      >>> state, sums = jax.jit(task.train_step)(state, {"x": x_Bx64})
    """

    widths: tuple[int, ...]
    optimizer: optax.GradientTransformation
    method: str = "cd"
    k: int = 1
    visible: str = "bernoulli"
    chains: int = 20
    init_scale: float = 0.01
    steps_per_layer: int = 1
    restart_optimizer: bool = True
    sample_steps: int = 100
    image_shape: tuple[int, ...] | None = None

    @property
    def num_layers(self) -> int:
        return len(self.widths)

    @property
    def binary(self) -> bool:
        """The data are Bernoulli units: the pseudo-log-likelihood is defined."""
        return self.visible == "bernoulli"

    @property
    def metric_modes(self) -> dict[str, Mode]:
        modes: dict[str, Mode] = {"recon_mse": "min", "free_energy": "min"}
        if self.binary:
            modes["pll"] = "max"
        if self.num_layers > 1:
            modes |= {"layer": "max", "stack_recon_mse": "min"}
            modes |= {f"recon_mse_{i}": "min" for i in range(self.num_layers)}
        return modes

    @property
    def default_metric(self) -> str:
        if self.num_layers > 1:
            return "stack_recon_mse"
        return "pll" if self.binary else "recon_mse"

    @property
    def layers(self) -> tuple[tuple[str, ...], ...]:
        """Layer l's parameters, as :func:`dlcore.tasks.greedy.layer_ids` patterns."""
        return tuple(
            (f"encoder/{_name(i)}", f"visible_bias/{_name(i)}") for i in range(self.num_layers)
        )

    def layer_visible(self, layer: int) -> str:
        return self.visible if layer == 0 else "bernoulli"

    def rbm(self, params, layer: int) -> rbm.RBMParams:
        """Layer ``layer`` as :class:`dlcore.energy.rbm.RBMParams`."""
        dense = params["encoder"][_name(layer)]
        return rbm.RBMParams(dense["kernel"], params["visible_bias"][_name(layer)], dense["bias"])

    def inputs(self, params, x: jax.Array, upto: int) -> list[jax.Array]:
        """[v_0, ..., v_upto]: the flattened data and the mean-field activations above it."""
        vs = [x.reshape(x.shape[0], -1)]
        for i in range(upto):
            vs.append(rbm.hidden_probs(self.rbm(params, i), vs[-1]))
        return vs

    def down(self, params, v_BxV: jax.Array, layer: int) -> jax.Array:
        """Mean-field from layer ``layer``'s visible units down to the data, ``[B, D]``."""
        for i in reversed(range(layer)):
            v_BxV = rbm.visible_mean(self.rbm(params, i), v_BxV, self.layer_visible(i))
        return v_BxV

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        dims = (math.prod(batch["x"].shape[1:]), *self.widths)
        keys = jax.random.split(rng, self.num_layers + 1)
        encoder, visible_bias, chains = {}, {}, {}
        for i in range(self.num_layers):
            w = self.init_scale * jax.random.normal(keys[i], dims[i : i + 2], jnp.float32)
            encoder[_name(i)] = {"kernel": w, "bias": jnp.zeros((dims[i + 1],), jnp.float32)}
            visible_bias[_name(i)] = jnp.zeros((dims[i],), jnp.float32)
            # scikit-learn's start: chains with every hidden unit off.
            chains[_name(i)] = jnp.zeros((self.chains, dims[i + 1]), jnp.float32)
        params = {"encoder": encoder, "visible_bias": visible_bias}
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            model_state={"chains": chains} if self.method == "pcd" else {},
            opt_state=self.optimizer.init(params),
            rng=keys[-1],
        )

    def _layer_update(self, params, model_state, x, mask_B, key, layer: int):
        """Layer ``layer``'s CD gradient (a full tree, zero elsewhere), the chains after it,
        and its metric sums on the batch."""
        v_BxV = self.inputs(params, x, layer)[-1]
        p, visible = self.rbm(params, layer), self.layer_visible(layer)
        q_BxH = rbm.hidden_probs(p, v_BxV)
        persistent = self.method == "pcd"
        count = self.chains if persistent else v_BxV.shape[0]
        noise = rbm.draw_noise(key, self.k, count, p, visible)
        chains = model_state.get("chains", {})
        h_CxH = chains[_name(layer)] if persistent else rbm.sample(q_BxH, noise.h0)
        v_neg, q_neg, h_end = rbm.run_chain(p, h_CxH, noise.v, noise.h, visible)
        # CD's chains start at the batch's rows: padded rows leave both phases.
        g = rbm.cd_gradient(v_BxV, q_BxH, v_neg, q_neg, mask_B, None if persistent else mask_B)
        grads = jax.tree.map(jnp.zeros_like, params)
        grads["encoder"][_name(layer)] = {"kernel": g.w, "bias": g.c}
        grads["visible_bias"][_name(layer)] = g.b
        if persistent:
            model_state = {"chains": {**chains, _name(layer): h_end}}
        weights_B = jnp.ones_like(q_BxH[:, 0]) if mask_B is None else mask_B
        recon_B = jnp.mean((rbm.visible_mean(p, q_BxH, visible) - v_BxV) ** 2, axis=1)
        fe_B = rbm.free_energy(p, v_BxV, visible)
        sums = (jnp.sum(recon_B * weights_B), jnp.sum(fe_B * weights_B))
        return grads, model_state, sums

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        x = batch["x"]
        mask_B = batch.get("mask")
        weights_B = jnp.ones((x.shape[0],), jnp.float32) if mask_B is None else mask_B
        layer = active_layer(state.step, self.steps_per_layer, self.num_layers)
        key = state.step_key("gibbs")
        # One branch per layer: widths differ, so the stage is a switch, not a select.
        branches = [
            lambda p, m, i=i: self._layer_update(p, m, x, mask_B, key, i)
            for i in range(self.num_layers)
        ]
        grads, model_state, (recon, fe) = jax.lax.switch(
            layer, branches, state.params, state.model_state
        )
        params, opt_state = greedy_update(
            self.optimizer,
            grads,
            state.opt_state,
            state.params,
            layer_ids(state.params, self.layers),
            state.step,
            self.steps_per_layer,
            self.num_layers,
            restart=self.restart_optimizer and self.num_layers > 1,
        )
        count = jnp.sum(weights_B)
        metrics = {"recon_mse": recon, "free_energy": fe, "count": count}
        if self.num_layers > 1:
            metrics["layer"] = layer.astype(jnp.float32) * count
        new_state = state.replace(
            step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state
        )
        return new_state, metrics

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        x, params = batch["x"], state.params
        mask_B = batch.get("mask", jnp.ones((x.shape[0],), jnp.float32))
        vs = self.inputs(params, x, self.num_layers)
        recon, fe = [], []
        for i in range(self.num_layers):
            p, visible = self.rbm(params, i), self.layer_visible(i)
            recon_B = jnp.mean((rbm.reconstruct(p, vs[i], visible) - vs[i]) ** 2, axis=1)
            recon.append(jnp.sum(recon_B * mask_B))
            fe.append(jnp.sum(rbm.free_energy(p, vs[i], visible) * mask_B))
        layer = active_layer(state.step, self.steps_per_layer, self.num_layers)
        count = jnp.sum(mask_B)
        out = {"recon_mse": jnp.stack(recon)[layer], "free_energy": jnp.stack(fe)[layer]}
        if self.binary:
            pll_B = rbm.pseudo_log_likelihood(self.rbm(params, 0), vs[0])
            out["pll"] = jnp.sum(pll_B * mask_B)
        if self.num_layers > 1:
            top = self.num_layers - 1
            top_mean = rbm.visible_mean(self.rbm(params, top), vs[-1], self.layer_visible(top))
            stack_B = jnp.mean((self.down(params, top_mean, top) - vs[0]) ** 2, axis=1)
            out |= {"layer": layer.astype(jnp.float32) * count}
            out |= {"stack_recon_mse": jnp.sum(stack_B * mask_B)}
            out |= {f"recon_mse_{i}": r for i, r in enumerate(recon)}
        return {**out, "count": count}

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """Test figures and PNGs: see :func:`dlcore.tasks.rbm_report.rbm_report`."""
        from dlcore.tasks.rbm_report import rbm_report  # matplotlib only at the end of a run

        return rbm_report(self, state, data, directory)


class RBMSection(TaskSection):
    """The fields an RBM and a stack of them share (:class:`RBMConfig`,
    :class:`dlcore.tasks.dbn.DBNConfig`). The task owns its parameters (no [model]
    section); they load into a sigmoid ``mlp`` through ``[init]``."""

    model_roles: ClassVar[tuple[str, ...]] = ()  # its own weights and biases
    optimizer_roles: ClassVar[tuple[str, ...]] = ("model",)  # one chain: [optimizer]

    method: one_of(METHODS, "method") = Field("cd", description="'cd' (CD-k) or 'pcd'")
    k: PositiveInt = Field(1, description="Gibbs steps per update")
    visible: one_of(rbm.VISIBLE_UNITS, "visible units") = Field(
        "bernoulli", description="'bernoulli' (0/1 data) or 'gaussian' (standardized data)"
    )
    chains: PositiveInt | None = Field(
        None, description="PCD: persistent chains per layer (default: train.batch_size)"
    )
    init_scale: float = Field(0.01, gt=0.0, description="std of the initial weights")
    sample_steps: PositiveInt = Field(
        100, description="report: Gibbs steps between two rows of samples.png"
    )

    @model_validator(mode="after")
    def _chains_need_pcd(self):
        if self.chains is not None and self.method != "pcd":
            raise ValueError("chains needs method = 'pcd' (CD starts its chains at the batch)")
        return self

    def needs(self) -> tuple[Need, ...]:
        what = "0/1 inputs" if self.visible == "bernoulli" else "standardized real inputs"
        return (Need("x", ("features",), what),)

    def task_fields(self, ctx: BuildContext) -> dict:
        """The :class:`RBMTask` fields every RBM stack takes from this section and the run."""
        shape = ctx.data.info.get("image_shape")
        return {
            "optimizer": ctx.optimizer(),
            "method": self.method,
            "k": self.k,
            "visible": self.visible,
            "chains": self.chains or ctx.cfg.train.batch_size,
            "init_scale": self.init_scale,
            "sample_steps": self.sample_steps,
            "image_shape": tuple(shape) if shape else None,
        }


class RBMConfig(RBMSection):
    """A restricted Boltzmann machine of ``hidden`` units trained by CD-k or PCD-k
    (``method``, ``k``), the update fed to ``[optimizer]`` as a gradient."""

    name: Literal["rbm"] = "rbm"
    hidden: PositiveInt = Field(100, description="hidden units H")

    def build(self, ctx: BuildContext) -> RBMTask:
        return RBMTask((self.hidden,), **self.task_fields(ctx))
