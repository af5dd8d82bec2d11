"""Benchmarks for dlcore: NumPy and pure-JAX baselines plus the measuring harness.

``benchmarks.numpy_ref`` holds hand-derived forward/backward NumPy models (the correctness
baselines), ``benchmarks.jax_ref`` the same models in plain jax.numpy (the framework-overhead
baseline). ``python -m benchmarks all`` measures them side by side with dlcore and PyTorch.
"""
