"""Vanishing and exploding gradients in recurrent nets, measured and plotted.

Left panel: ‖∂L/∂h_t‖ for every step t of a T = 100 sequence, where L reads only the last
hidden state (``dlcore.recurrent.hidden_grad_norms``). The backward pass multiplies by the
step Jacobian diag(φ'(a_t)) U once per step, so for the tanh RNN the norm shrinks
geometrically when U is small (vanishing) and grows geometrically when U is large
(exploding); the LSTM's additive cell path, c_t = f ⊙ c_{t−1} + i ⊙ g, keeps it of one
order of magnitude over the whole sequence (preserved).

Right panel: the exploding network trained with SGD on the adding problem (T = 50), with and
without clipping the global gradient norm: unclipped, a single huge gradient throws the
weights far away (the loss jumps by orders of magnitude or becomes NaN); clipped, every
update has norm <= lr · clip and training proceeds.

Run:  python examples/gradient_report.py [--out gradient_report.png] [--steps 200]
"""

import argparse
import pathlib

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dlcore.data.sequences import AddingConfig, make_adding  # noqa: E402
from dlcore.models.rnn import last_valid  # noqa: E402
from dlcore.recurrent import RNN, ElmanCell, LSTMCell, hidden_grad_norms  # noqa: E402

CASES = (  # label, cell, scale of the (orthogonal) recurrent kernel
    ("tanh RNN, U = 0.5·orthogonal (vanishing)", "rnn", 0.5),
    ("tanh RNN, U = 2·orthogonal (exploding)", "rnn", 2.0),
    ("LSTM, orthogonal U (preserved)", "lstm", 1.0),
)


def scaled_rnn(cell: str, scale: float, hidden: int, x_BxTxD: jax.Array, seed: int = 0):
    """An RNN layer and its variables with the recurrent kernel multiplied by ``scale``."""
    rnn = RNN(ElmanCell(hidden) if cell == "rnn" else LSTMCell(hidden), impl="scan")
    params = rnn.init(jax.random.PRNGKey(seed), x_BxTxD)["params"]
    cell_params = dict(params["cell"])
    cell_params["recurrent_kernel"] = cell_params["recurrent_kernel"] * scale
    return rnn, {"params": {**params, "cell": cell_params}}


def gradient_profiles(steps: int = 100, hidden: int = 32, batch: int = 8) -> dict[str, np.ndarray]:
    """‖∂L/∂h_t‖ for t = 1..T for every case, with L = Σ h_T (the last state only)."""
    x_BxTxD = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (batch, steps, 4))
    profiles = {}
    for label, cell, scale in CASES:
        rnn, variables = scaled_rnn(cell, scale, hidden, x_BxTxD)
        norms = hidden_grad_norms(rnn, variables, x_BxTxD, lambda y: jnp.sum(y[:, -1]))
        profiles[label] = np.asarray(norms)
    return profiles


def train_adding(clip: float | None, steps: int, lr: float = 0.05, seed: int = 0) -> np.ndarray:
    """Training MSE per step of the exploding tanh RNN (scale 2) on the adding problem."""
    data = make_adding(AddingConfig(n_samples=2000, length=50, seed=seed))
    x_all, y_all = jnp.asarray(data.train.x), jnp.asarray(data.train.y)
    rnn, variables = scaled_rnn("rnn", 2.0, 32, x_all[:2])
    params = {"rnn": variables["params"], "w": jnp.zeros((32, 1)), "b": jnp.ones((1,))}
    chain = [optax.sgd(lr)] if clip is None else [optax.clip_by_global_norm(clip), optax.sgd(lr)]
    opt = optax.chain(*chain)

    def loss_fn(p, x, y):
        h_BxTxH = rnn.apply({"params": p["rnn"]}, x)
        pred = last_valid(h_BxTxH, None) @ p["w"] + p["b"]
        return jnp.mean((pred - y) ** 2)

    @jax.jit
    def step(p, s, i):
        rows = jax.random.randint(jax.random.fold_in(jax.random.PRNGKey(seed), i), (32,), 0, 1400)
        loss, g = jax.value_and_grad(loss_fn)(p, x_all[rows], y_all[rows])
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, loss

    state = opt.init(params)
    losses = []
    for i in range(steps):
        params, state, loss = step(params, state, i)
        losses.append(float(loss))
    return np.array(losses)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gradient_report.png")
    parser.add_argument("--steps", type=int, default=200, help="SGD steps per clipping run")
    args = parser.parse_args(argv)

    profiles = gradient_profiles()
    curves = {
        "no clipping": train_adding(None, args.steps),
        "clip_by_global_norm(1.0)": train_adding(1.0, args.steps),
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, norms in profiles.items():
        left.semilogy(np.arange(1, len(norms) + 1), np.maximum(norms, 1e-30), label=label)
        print(f"{label:45s} ||dL/dh_1|| = {norms[0]:.2e}   ||dL/dh_T|| = {norms[-1]:.2e}")
    left.set(xlabel="time step t", ylabel="||dL/dh_t||  (L reads h_T only)", title="BPTT")
    left.legend(fontsize=8)
    for label, losses in curves.items():
        finite = np.where(np.isfinite(losses), losses, np.nan)
        right.semilogy(finite, label=label)
        print(f"exploding RNN, {label:26s} final training MSE = {losses[-1]:.4g}")
    right.axhline(1 / 6, color="gray", linestyle=":", label="predict 1.0 (MSE 1/6)")
    right.set(xlabel="SGD step", ylabel="training MSE", title="adding problem, U = 2·orth")
    right.legend(fontsize=8)
    fig.tight_layout()
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
