"""A digits classifier's penultimate features, the space where sample quality is measured.

FID measures samples in the features of an ImageNet Inception network; dlcore measures them
in the features of a small classifier trained by dlcore itself on digits with pixels in
[0, 1] (``experiments/digits_classifier.toml``), referenced by its run directory. The
features are the input of the last layer the classifier calls (its head): for an MLP, the
last hidden layer after its activation.
"""

import math
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

CHUNK = 512  # examples per compiled feature pass


class _HeadInput(Exception):
    def __init__(self, value):
        super().__init__("head reached")
        self.value = value


def head_input(module: nn.Module, variables, x: jax.Array) -> jax.Array:
    """``[B, F]``: the first argument of the last layer ``module`` calls (eval mode), flattened.

    Every layer call is recorded as it starts; the last one to start is the head, and its
    input is the penultimate representation.
    """
    seen: list = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and context.module.path and args:
            seen.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        module.apply(variables, x, train=False)
    if not seen:
        raise ValueError("the classifier calls no layers")
    last = seen[-1]
    return last.reshape(last.shape[0], -1)


class FeatureNet:
    """A restored classifier and its input shape; :meth:`features` maps images to features.

    Attributes:
      path: the classifier's run directory.
      x_shape: the per-example input shape it was trained on (e.g. ``(64,)`` or ``(8, 8, 1)``).
      width: the feature width F.
    """

    def __init__(self, path: pathlib.Path, module: nn.Module, variables, x_shape: tuple):
        self.path = path
        self.x_shape = tuple(x_shape)
        self._fn = jax.jit(lambda v, x: head_input(module, v, x))
        self._variables = variables
        self.width = int(
            jax.eval_shape(self._fn, variables, jnp.zeros((1, *self.x_shape))).shape[1]
        )

    def features(self, x) -> np.ndarray:
        """``[N, F]`` float64 features of N images with pixels in [0, 1] (any layout holding
        ``prod(x_shape)`` pixels per example)."""
        x = np.asarray(x, np.float32)
        n = x.shape[0]
        if math.prod(x.shape[1:]) != math.prod(self.x_shape):
            raise ValueError(
                f"the classifier at {self.path} reads {list(self.x_shape)} "
                f"({math.prod(self.x_shape)} pixels); got examples of shape {list(x.shape[1:])}"
            )
        x = x.reshape(n, *self.x_shape)
        out = []
        for start in range(0, n, CHUNK):  # the last chunk is padded: one compiled shape
            part = x[start : start + CHUNK]
            padded = np.zeros((CHUNK, *self.x_shape), np.float32)
            padded[: len(part)] = part
            out.append(np.asarray(self._fn(self._variables, padded))[: len(part)])
        return np.concatenate(out).astype(np.float64)


def load_feature_net(run_dir: str | pathlib.Path) -> FeatureNet:
    """The classifier of a finished dlcore run (its best checkpoint), after checking that it
    is a one-model classifier of images with pixels in [0, 1].

    Raises:
      RunDirError: not a run directory, or no checkpoint.
      ValueError: a run of another kind, naming what it is.
    """
    from dlcore.experiment.restore import restore_run  # the experiment layer imports tasks

    restored = restore_run(run_dir, "best")
    task, data = restored.experiment.task, restored.experiment.data
    module = getattr(task, "model", None)
    where = restored.run.path
    if module is None or not getattr(data, "num_classes", None):
        raise ValueError(f"{where} is not a classifier run (one model, class labels)")
    if data.info.get("pixel_range") != [0.0, 1.0]:
        raise ValueError(
            f"{where}: the classifier must be trained on pixels in [0, 1] "
            "(digits preprocess = 'unit'); its data have no such range"
        )
    variables = {"params": restored.state.params, **restored.state.model_state}
    x_shape = tuple(data.spec().fields["x"].shape)
    return FeatureNet(where, module, variables, x_shape)
