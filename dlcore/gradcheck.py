"""Gradient checking: autodiff gradients against central finite differences in float64.

For a scalar function f(theta, *args) the check computes, for every parameter entry,

    g_fd_i = (f(theta + eps e_i) - f(theta - eps e_i)) / (2 eps)

and reports for every parameter leaf the relative error
||g_auto - g_fd|| / max(||g_auto||, ||g_fd||), which is ~1e-8 or smaller for a correct
gradient in float64 and O(1) for a wrong one. Norm-based per-leaf errors avoid the noise of
dividing tiny per-entry gradients.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

_CHUNK = 256  # finite-difference directions evaluated per vmapped call


@dataclasses.dataclass(frozen=True)
class GradCheckResult:
    """Per-leaf comparison of autodiff and finite-difference gradients.

    Attributes:
      rel_err: relative error per parameter leaf, keyed by its path (``"['Dense_0']['kernel']"``).
      abs_err: max absolute entry difference per leaf.
      grad_norm: norm of the autodiff gradient per leaf.
      eps: the finite-difference step.
    """

    rel_err: dict[str, float]
    abs_err: dict[str, float]
    grad_norm: dict[str, float]
    eps: float

    @property
    def max_rel_err(self) -> float:
        """The largest relative error over all leaves."""
        return max(self.rel_err.values(), default=0.0)

    def assert_ok(self, tol: float = 1e-6) -> None:
        """Raises AssertionError with the table if any leaf's relative error exceeds ``tol``."""
        if not self.max_rel_err <= tol:
            raise AssertionError(f"gradient check failed (tol {tol:g}):\n{self}")

    def __str__(self) -> str:
        width = max([len("parameter")] + [len(p) for p in self.rel_err])
        lines = [f"{'parameter':<{width}}  {'rel err':>9}  {'max abs err':>11}  {'|grad|':>9}"]
        for path, rel in self.rel_err.items():
            lines.append(
                f"{path:<{width}}  {rel:9.2e}  {self.abs_err[path]:11.2e}  "
                f"{self.grad_norm[path]:9.2e}"
            )
        lines.append(f"max rel err {self.max_rel_err:.2e} (central differences, eps={self.eps:g})")
        return "\n".join(lines)


def _host_float64(tree):
    """Floating leaves to NumPy float64 on the host (no device program compiled per shape);
    everything else (integer labels, PRNG keys, static objects) is left as it is."""

    def cast(x):
        if isinstance(x, float) or (hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)):
            return np.asarray(x, np.float64)
        return x

    return jax.tree.map(cast, tree)


def gradcheck(fn: Callable[..., jax.Array], params, *args, eps: float = 1e-6) -> GradCheckResult:
    """Compares ``jax.grad(fn)(params, *args)`` with central finite differences, in float64.

    Floating-point ``params`` and ``args`` are cast to float64 (integer args such as labels
    are kept), and the whole check runs under ``jax.enable_x64``, so callers need no global
    flag. Choose inputs away from kinks (ReLU at 0, hinge at the margin), where the two
    one-sided derivatives differ and no check can agree.

    Args:
      fn: scalar function ``fn(params, *args)``; ``params`` is any pytree of float arrays.
      params: the point at which to check.
      *args: further inputs, held fixed.
      eps: finite-difference step (1e-6 balances truncation and rounding in float64).

    Returns:
      A :class:`GradCheckResult`; ``print`` it for a table, or call ``assert_ok(tol)``.

    Example:
      >>> result = gradcheck(lambda w, x: jnp.sum(jnp.tanh(x @ w)), jnp.ones((3, 2)),
      ...                    jnp.arange(6.0).reshape(2, 3) / 6)
      >>> result.max_rel_err < 1e-6
      True
    """
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = [jax.tree_util.keystr(path) or "params" for path, _ in paths_leaves]
    leaves = []
    for name, (_, leaf) in zip(names, paths_leaves, strict=True):
        leaf = np.asarray(leaf)
        if not np.issubdtype(leaf.dtype, np.floating):
            raise ValueError(
                f"gradcheck params must be floating point; leaf {name} is {leaf.dtype}"
            )
        leaves.append(leaf.astype(np.float64))
    if not leaves or sum(leaf.size for leaf in leaves) == 0:
        raise ValueError("gradcheck params have no entries to check")
    shapes = [leaf.shape for leaf in leaves]
    offsets = np.cumsum([0] + [leaf.size for leaf in leaves])
    theta = np.concatenate([leaf.ravel() for leaf in leaves])
    args64 = _host_float64(args)

    def f(flat):
        # unflatten inside the traced function: slicing here costs no eager compilations
        pieces = [
            flat[start:stop].reshape(shape)
            for start, stop, shape in zip(offsets[:-1], offsets[1:], shapes, strict=True)
        ]
        value = fn(jax.tree.unflatten(treedef, pieces), *args64)
        if jnp.ndim(value) != 0:
            raise ValueError(f"gradcheck fn must return a scalar; got shape {jnp.shape(value)}")
        return value

    chunk = min(_CHUNK, theta.size)

    def central_differences(flat, indices):
        def one(i):
            step = eps * jax.nn.one_hot(i, flat.size, dtype=flat.dtype)
            return (f(flat + step) - f(flat - step)) / (2 * eps)

        return jax.vmap(one)(indices)

    with jax.enable_x64(True):
        # args enter as closed-over constants, so any pytree (keys, strings) is allowed
        auto = np.asarray(jax.jit(jax.grad(f))(theta))
        fd_chunks = jax.jit(central_differences)
        # equal-sized chunks (the last one padded) so the vmapped program compiles once
        indices = np.arange(-(-theta.size // chunk) * chunk) % theta.size
        fd = np.concatenate(
            [
                np.asarray(fd_chunks(theta, indices[start : start + chunk]))
                for start in range(0, indices.size, chunk)
            ]
        )[: theta.size]

    rel_err, abs_err, grad_norm = {}, {}, {}
    for name, start, stop in zip(names, offsets[:-1], offsets[1:], strict=True):
        g_auto, g_fd = auto[start:stop], fd[start:stop]
        scale = max(np.linalg.norm(g_auto), np.linalg.norm(g_fd))
        rel_err[name] = float(np.linalg.norm(g_auto - g_fd) / scale) if scale > 0 else 0.0
        abs_err[name] = float(np.max(np.abs(g_auto - g_fd)))
        grad_norm[name] = float(np.linalg.norm(g_auto))
    return GradCheckResult(rel_err=rel_err, abs_err=abs_err, grad_norm=grad_norm, eps=eps)
