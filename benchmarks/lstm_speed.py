"""LSTM forward+backward speed: dlcore scan vs dlcore custom VJP vs torch.nn.LSTM (if present).

Run: PYTHONPATH=. JAX_PLATFORMS=cpu python benchmarks/lstm_speed.py [--steps 100 --batch 32
--hidden 256 --inputs 65 --repeats 20]. Prints compile time and the median time per
forward+backward pass of a summed-output loss, and each implementation's speed relative
to torch.nn.LSTM (> 1 means faster than torch).
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.recurrent import RNN, LSTMCell


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_dlcore(impl: str, args, remat: bool = False) -> tuple[float, float]:
    """(compile seconds, median seconds per forward+backward) for one RNN impl."""
    rnn = RNN(LSTMCell(args.hidden), impl=impl, remat=remat)
    x = jax.random.normal(jax.random.key(0), (args.batch, args.steps, args.inputs))
    params = rnn.init(jax.random.key(1), x)

    def loss(p, x):
        return jnp.sum(rnn.apply(p, x))

    grad = jax.jit(jax.value_and_grad(loss))
    start = time.perf_counter()
    compiled = grad.lower(params, x).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(params, x))
    return compile_s, _median_seconds(
        lambda: jax.block_until_ready(compiled(params, x)), args.repeats
    )


def time_torch(args) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    lstm = torch.nn.LSTM(args.inputs, args.hidden, batch_first=True)
    x = torch.from_numpy(
        np.random.default_rng(0)
        .normal(size=(args.batch, args.steps, args.inputs))
        .astype(np.float32)
    )

    def step():
        lstm.zero_grad()
        out, _ = lstm(x)
        out.sum().backward()

    step()
    return _median_seconds(step, args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--inputs", type=int, default=65)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch_s = time_torch(args)
    rows = [("torch.nn.LSTM", None, torch_s)] if torch_s else []
    for label, impl, remat in (
        ("dlcore scan", "scan", False),
        ("dlcore scan+remat", "scan", True),
        ("dlcore custom_vjp", "custom_vjp", False),
        ("dlcore custom_vjp+remat", "custom_vjp", True),
    ):
        rows.append((label, *time_dlcore(impl, args, remat)))
    tokens = args.steps * args.batch
    for label, compile_s, sec in rows:
        ratio = f"{torch_s / sec:5.2f}x torch" if torch_s else ""
        comp = f"compile {compile_s:5.2f}s" if compile_s is not None else " " * 13
        print(f"{label:26s} {comp}  {sec * 1e3:7.2f} ms/iter  {tokens / sec:9.0f} tok/s  {ratio}")


if __name__ == "__main__":
    main()
