"""The machine under test: float32 GEMM peak (NumPy and JAX), BLAS kernel, versions, date.

The GEMM peak is measured in the same run as the models so "% of peak" compares figures taken
under the same load; on a shared machine a peak from another day would mislead. It is measured
before and after the suites and the higher figure is used: a burst of load from other processes
during one measurement would otherwise understate the peak and inflate every "% of peak".
"""

import datetime
import importlib.metadata
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import threadpoolctl

PACKAGES = ("dlcore", "jax", "jaxlib", "flax", "optax", "numpy", "torch", "threadpoolctl")


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (and compile, for JAX)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_peak(n: int = 2048, repeats: int = 5) -> dict:
    """Best float32 ``[n, n] @ [n, n]`` throughput in GFLOP/s with NumPy and with jax.jit.

    Example:
      >>> gemm_peak(n=64, repeats=1)["numpy_gflops"] > 0
      True
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    matmul = jax.jit(jnp.matmul)
    flop = 2.0 * n**3
    numpy_s = _best_seconds(lambda: a @ b, repeats)
    jax_s = _best_seconds(lambda: matmul(ja, jb).block_until_ready(), repeats)
    numpy_gflops, jax_gflops = flop / numpy_s / 1e9, flop / jax_s / 1e9
    return {
        "n": n,
        "numpy_gflops": numpy_gflops,
        "jax_gflops": jax_gflops,
        "peak_gflops": max(numpy_gflops, jax_gflops),
    }


def blas_info() -> list[dict]:
    """The BLAS/OpenMP libraries loaded in this process, as threadpoolctl reports them."""
    keep = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "architecture")
    return [
        {k: lib[k] for k in keep if k in lib} | {"file": os.path.basename(lib["filepath"])}
        for lib in threadpoolctl.threadpool_info()
    ]


def versions(packages: tuple[str, ...] = PACKAGES) -> dict:
    """Installed versions of the packages that matter for the figures (None if absent)."""
    found = {}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """CPU model, core count, OS, Python and the JAX backend."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
    }


def gemm_size(quick: bool) -> dict:
    """Arguments of :func:`gemm_peak` for a quick or a full run."""
    return {"n": 256, "repeats": 1} if quick else {"n": 2048, "repeats": 5}


def collect(quick: bool) -> dict:
    """Everything about the system for the results JSON; measures the GEMM peak first."""
    torch_threads = None
    try:
        import torch

        torch_threads = torch.get_num_threads()
    except ImportError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        # Other processes' load makes medians drift; it is recorded so readers can judge.
        "load_avg_1_5_15": list(os.getloadavg()),
        "machine": machine(),
        "gemm": gemm_peak(**gemm_size(quick)),
        "blas": blas_info(),
        "versions": versions(),
        "torch_threads": torch_threads,
    }
