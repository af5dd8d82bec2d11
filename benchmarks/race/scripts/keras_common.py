"""What the Keras race scripts share: the JAX backend, dlcore's batch order, timing.

Keras reads ``KERAS_BACKEND`` when it is first imported, so the scripts import this module
before ``keras``. Kernels use Keras's ``lecun_normal`` (the same truncated normal as
Flax's) and biases zeros, as dlcore does.
"""

import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import plain_data  # noqa: E402


class EpochBatches(keras.utils.PyDataset):
    """dlcore's batches: permutation ``default_rng([seed, epoch])``, last partial batch dropped."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epoch = 0
        self.rows = plain_data.epoch_batches(len(x), batch_size, seed, 0)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        rows = self.rows[index]
        return self.x[rows], self.y[rows]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.rows = plain_data.epoch_batches(len(self.x), self.batch_size, self.seed, self.epoch)


class RaceClock(keras.callbacks.Callback):
    """Feeds :class:`plain_data.EpochLog`: training seconds of each epoch (from its start
    to the end of its last step, validation and ``evaluate`` excluded) and the validation
    value, read from the logs as ``val_<metric>`` or computed by ``evaluate(model)``."""

    def __init__(self, log: "plain_data.EpochLog", evaluate=None):
        super().__init__()
        self.log, self.evaluate = log, evaluate

    def on_epoch_begin(self, epoch, logs=None):
        self.t0, self.eval_s, self.t_trained = time.perf_counter(), 0.0, None

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.params.get("steps") and logs:
            # JAX dispatches steps asynchronously: wait for the epoch's last one, or its
            # compute would be billed to the validation that follows.
            [float(v) for v in logs.values()]
            self.t_trained = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.t_test = time.perf_counter()

    def on_test_end(self, logs=None):
        self.eval_s += time.perf_counter() - self.t_test

    def on_epoch_end(self, epoch, logs=None):
        if self.t_trained is not None:
            train_s = self.t_trained - self.t0
        else:
            train_s = time.perf_counter() - self.t0 - self.eval_s
        if self.evaluate is None:
            value = float(logs[f"val_{self.log.metric}"])
        else:
            value = self.evaluate(self.model)
        self.log.epoch(train_s, value)
