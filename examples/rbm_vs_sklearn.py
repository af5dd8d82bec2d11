"""dlcore's RBM against scikit-learn's ``BernoulliRBM``: same data, same hyper-parameters,
pseudo-log-likelihood per epoch side by side, and wall time.

Both train a Bernoulli-Bernoulli RBM on the binarized digits' training split (1257 images,
pixel >= 8 -> 1) by PCD-1 with plain SGD: scikit-learn's update is

    W += (lr / B) (v_pos^T p(h|v_pos) - v_neg^T p(h|v_neg)),  likewise both biases,

with B persistent chains started at h = 0 and weights drawn from N(0, 0.01^2); dlcore runs
``[task] name = "rbm", method = "pcd", k = 1, chains = B`` with ``[optimizer] name = "sgd"``
(its CD gradient is the mean over the batch, so the step is the same; tests/test_rbm.py
checks one step against ``BernoulliRBM._fit`` to 1e-12). Differences that remain: the
random streams, and the batch order: scikit-learn visits fixed, unshuffled slices of
about B examples covering all N; dlcore a fresh permutation every epoch, dropping the last
N mod B examples.

scikit-learn's epochs are its own ``fit`` loop, run one epoch at a time (the same
initialisation and ``_fit`` calls as ``fit``) so both models can be scored after every
epoch with the SAME estimators, on the training split:
  - exact PLL: sum over all 64 bits of log p(v_i | v_-i) (``dlcore.energy.pseudo_log_likelihood``),
  - one-bit PLL: scikit-learn's ``score_samples`` (64 x one random bit's term per image).
Wall times count training only (scoring excluded); dlcore's first epoch includes its
compilation, given separately. dlcore runs each epoch as ONE compiled ``lax.scan`` of the
task's ``train_step`` (what ``train.mode = "scan"`` does).

Run:  python examples/rbm_vs_sklearn.py [--hidden 100] [--lr 0.06] [--batch-size 10]
      [--epochs 20] [--seed 0]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.config.loading import validate
from dlcore.energy import RBMParams, pseudo_log_likelihood
from dlcore.experiment import build


def dlcore_experiment(args):
    raw = {
        "name": "rbm_vs_sklearn",
        "seed": args.seed,
        "data": {"name": "digits", "preprocess": "none", "binarize": True},
        "task": {"name": "rbm", "hidden": args.hidden, "method": "pcd", "k": 1},
        "optimizer": {"name": "sgd", "learning_rate": args.lr},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size},
    }
    raw["task"]["chains"] = args.batch_size
    return build(validate(raw, "rbm_vs_sklearn"), "rbm_vs_sklearn")


def exact_pll(params: RBMParams, x: np.ndarray) -> float:
    return float(jnp.mean(jax.jit(pseudo_log_likelihood)(params, jnp.asarray(x))))


def sklearn_rbm(args, x: np.ndarray):
    """A ``BernoulliRBM`` set up exactly as its ``fit`` does, and one epoch of its loop."""
    from sklearn.neural_network import BernoulliRBM
    from sklearn.utils import gen_even_slices

    sk = BernoulliRBM(
        n_components=args.hidden,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        n_iter=args.epochs,
        random_state=args.seed,
    )
    rng = np.random.RandomState(args.seed)
    sk.components_ = np.asarray(rng.normal(0, 0.01, (args.hidden, x.shape[1])), order="F")
    sk.intercept_hidden_ = np.zeros(args.hidden)
    sk.intercept_visible_ = np.zeros(x.shape[1])
    sk.h_samples_ = np.zeros((args.batch_size, args.hidden))
    sk.n_features_in_ = x.shape[1]
    n_batches = int(np.ceil(len(x) / args.batch_size))
    slices = list(gen_even_slices(n_batches * args.batch_size, n_batches, n_samples=len(x)))

    def epoch():
        for batch in slices:
            sk._fit(x[batch], rng)

    return sk, epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.06)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    experiment = dlcore_experiment(args)
    task, train = experiment.task, experiment.data.train
    x = np.asarray(train.x, np.float32).reshape(len(train.x), -1)
    x64 = x.astype(np.float64)
    order = task.make_order(len(x), args.batch_size, args.seed)
    state = task.init(jax.random.PRNGKey(args.seed), {"x": x[: args.batch_size]})

    @jax.jit
    def run_epoch(state, batches_SxBxV):
        def body(state, batch_x):
            state, _ = task.train_step(state, {"x": batch_x})
            return state, None

        return jax.lax.scan(body, state, batches_SxBxV)[0]

    sk, sk_epoch = sklearn_rbm(args, x64)
    times = {"dlcore": [], "sklearn": []}
    print(f"RBM {x.shape[1]}x{args.hidden}, PCD-1, SGD lr {args.lr}, batch {args.batch_size}")
    print("training-split pseudo-log-likelihood (nats per image; higher is better)\n")
    print("| epoch | dlcore exact | sklearn exact | dlcore one-bit | sklearn one-bit |")
    print("|---:|---:|---:|---:|---:|")
    for epoch in range(args.epochs):
        batches = jnp.asarray(x[order.indices(epoch)])
        start = time.perf_counter()
        state = jax.block_until_ready(run_epoch(state, batches))
        times["dlcore"].append(time.perf_counter() - start)
        start = time.perf_counter()
        sk_epoch()
        times["sklearn"].append(time.perf_counter() - start)
        ours = task.rbm(state.params, 0)
        theirs = RBMParams(
            jnp.asarray(sk.components_.T, jnp.float32),
            jnp.asarray(sk.intercept_visible_, jnp.float32),
            jnp.asarray(sk.intercept_hidden_, jnp.float32),
        )
        # The one-bit estimate of either model via scikit-learn's score_samples (same bits).
        sk_ours = _as_sklearn(sk, ours)
        row = [
            exact_pll(ours, x),
            exact_pll(theirs, x),
            float(sk_ours.score_samples(x64).mean()),
            float(sk.score_samples(x64).mean()),
        ]
        print(f"| {epoch + 1} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    d, s = times["dlcore"], times["sklearn"]
    print(
        f"\nwall time, training only: dlcore {sum(d):.2f} s ({d[0]:.2f} s first epoch with "
        f"compilation, then {np.mean(d[1:]) if len(d) > 1 else float('nan'):.4f} s/epoch); "
        f"scikit-learn {sum(s):.2f} s ({np.mean(s):.4f} s/epoch); "
        f"device {jax.devices()[0].platform}"
    )


def _as_sklearn(template, params: RBMParams):
    """A copy of the fitted ``template`` holding ``params`` (to score them its way)."""
    import copy

    sk = copy.copy(template)
    sk.components_ = np.asarray(params.w, np.float64).T.copy()
    sk.intercept_visible_ = np.asarray(params.b, np.float64).copy()
    sk.intercept_hidden_ = np.asarray(params.c, np.float64).copy()
    return sk


if __name__ == "__main__":
    main()
