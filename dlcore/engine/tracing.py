"""Whether the function being traced is the body of a compiled loop.

XLA:CPU runs some operations far slower inside a while loop (what ``lax.scan`` lowers to)
than at the top level of a computation. Measured on this project's 2-core CPU (jax 0.10.2,
float32, one Adam step of the benchmark ResNet of ``benchmarks/suite_resnet.py`` at B = 32):
XLA's convolution took 38.8 ms per step at the top level but 709.5 ms per step inside a
``lax.scan``; the patches + GEMM lowering took 68.3 and 48.5 ms. Layers with several
lowerings therefore pick per context: the engine traces its multi-step scan inside
:func:`loop_body`, and research code that scans over training steps can do the same.

Example:
  >>> in_loop_body()
  False
  >>> with loop_body():
  ...     in_loop_body()
  True
"""

import contextlib
import contextvars
from collections.abc import Iterator

_IN_LOOP_BODY = contextvars.ContextVar("dlcore_in_loop_body", default=False)


@contextlib.contextmanager
def loop_body() -> Iterator[None]:
    """Marks everything traced inside the ``with`` block as a compiled loop's body."""
    token = _IN_LOOP_BODY.set(True)
    try:
        yield
    finally:
        _IN_LOOP_BODY.reset(token)


def in_loop_body() -> bool:
    """True while tracing inside :func:`loop_body`."""
    return _IN_LOOP_BODY.get()
