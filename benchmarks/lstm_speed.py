"""LSTM forward+backward speed: dlcore scan, custom VJP and native (oneDNN) vs torch.nn.LSTM.

Run: PYTHONPATH=. JAX_PLATFORMS=cpu python benchmarks/lstm_speed.py [--steps 100 --batch 32
--hidden 256 --inputs 65 --repeats 20]. The loss is the sum of all outputs; every timed call
computes it and the gradient of every parameter. Implementations are timed round-robin so a
load change on a shared machine hits all of them alike. Prints compile time, median and best
time per forward+backward pass, tokens/s (T·B per pass) and the speed relative to
torch.nn.LSTM (> 1 means faster than torch), by median.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.recurrent import RNN, LSTMCell


def dlcore_step(impl: str, remat: bool, args):
    """(compile seconds, zero-argument callable running one forward+backward)."""
    rnn = RNN(LSTMCell(args.hidden), impl=impl, remat=remat)
    x = jax.random.normal(jax.random.key(0), (args.batch, args.steps, args.inputs))
    params = rnn.init(jax.random.key(1), x)

    def loss(p, x):
        return jnp.sum(rnn.apply(p, x))

    start = time.perf_counter()
    compiled = jax.jit(jax.value_and_grad(loss)).lower(params, x).compile()
    compile_s = time.perf_counter() - start
    return compile_s, lambda: jax.block_until_ready(compiled(params, x))


def _native_available() -> bool:
    from dlcore import native

    return native.available()


def torch_step(args, threads: int | None = None):
    """Zero-argument callable running torch.nn.LSTM forward+backward, or None without torch.

    ``threads`` pins torch's intra-op threads for the duration of each call (OpenMP spin-waits
    badly when the machine is oversubscribed, so one thread can beat two on a busy box).
    """
    try:
        import torch
    except ImportError:
        return None
    default_threads = torch.get_num_threads()
    lstm = torch.nn.LSTM(args.inputs, args.hidden, batch_first=True)
    shape = (args.batch, args.steps, args.inputs)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=shape).astype(np.float32))

    def step():
        torch.set_num_threads(threads or default_threads)
        lstm.zero_grad()
        out, _ = lstm(x)
        out.sum().backward()
        torch.set_num_threads(default_threads)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--inputs", type=int, default=65)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    runs = {}  # label -> (compile seconds or None, callable)
    step = torch_step(args)
    if step is not None:
        runs["torch.nn.LSTM"] = (None, step)
        runs["torch.nn.LSTM 1 thread"] = (None, torch_step(args, threads=1))
    for label, impl, remat in (
        ("dlcore scan", "scan", False),
        ("dlcore scan+remat", "scan", True),
        ("dlcore custom_vjp", "custom_vjp", False),
        ("dlcore custom_vjp+remat", "custom_vjp", True),
        ("dlcore native", "native", False),
    ):
        if impl == "native" and not _native_available():
            continue
        runs[label] = dlcore_step(impl, remat, args)
    times = {label: [] for label in runs}
    for _, fn in runs.values():
        fn()  # warm-up
    for _ in range(args.repeats):
        for label, (_, fn) in runs.items():
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)

    tokens = args.steps * args.batch
    ref = statistics.median(times["torch.nn.LSTM"]) if "torch.nn.LSTM" in times else None
    print(f"T={args.steps} B={args.batch} H={args.hidden} D={args.inputs}, forward+backward")
    for label, (compile_s, _) in runs.items():
        med, best = statistics.median(times[label]), min(times[label])
        comp = f"compile {compile_s:4.2f}s" if compile_s is not None else " " * 12
        ratio = f"{ref / med:5.2f}x torch" if ref else ""
        print(
            f"{label:24s} {comp}  median {med * 1e3:6.1f} ms  best {best * 1e3:6.1f} ms  "
            f"{tokens / med:7.0f} tok/s  {ratio}"
        )


if __name__ == "__main__":
    main()
