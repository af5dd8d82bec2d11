"""LeNet-5 on digits (experiments/digits_lenet5.toml) in Keras 3 on JAX, with ``model.fit``.

32x32 digits minus the channel mean; random crops (zero-pad 3, crop back at a uniform
offset per image, a small layer below: Keras's ``RandomCrop`` takes one offset per batch);
conv 5x5x6 'same' -> ReLU -> max-pool 2 -> conv 5x5x16 -> ReLU -> max-pool 2 -> 120 -> 84
-> 10; AdamW(2e-3, weight decay 1e-4 on kernels only) with a cosine decay to 0 over 1170
updates; batch 32 (dlcore's batch order), 30 epochs; target validation accuracy 0.985.

  python benchmarks/race/scripts/train_keras_lenet.py
"""

import plain_data  # noqa: I001  (first: it starts the script clock before keras loads)
from keras_common import EpochBatches, RaceClock, keras

EPOCHS, BATCH, LR, WEIGHT_DECAY, DECAY_STEPS, PAD = 30, 32, 2e-3, 1e-4, 1170, 3
SEED, TARGET = 0, 0.985
ops = keras.ops


class RandomPadCrop(keras.layers.Layer):
    """Training only: zero-pad each image by ``pad`` and crop it back at a random offset."""

    def __init__(self, pad: int, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad
        self.seed = keras.random.SeedGenerator(SEED)

    def call(self, x, training=False):
        if not training:
            return x
        n, h, w = x.shape[0], x.shape[1], x.shape[2]
        p = self.pad
        padded = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        top = keras.random.randint((n, 1), 0, 2 * p + 1, seed=self.seed)
        left = keras.random.randint((n, 1), 0, 2 * p + 1, seed=self.seed)
        rows = top + ops.arange(h)[None]  # [N, H]
        cols = left + ops.arange(w)[None]  # [N, W]
        x = ops.take_along_axis(padded, rows[:, :, None, None], axis=1)  # [N, H, W+2p, C]
        return ops.take_along_axis(x, cols[:, None, :, None], axis=2)


def main() -> None:
    keras.utils.set_random_seed(SEED)
    splits = plain_data.digits_images(32)
    init = dict(kernel_initializer="lecun_normal")
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            RandomPadCrop(PAD),
            layers.Conv2D(6, 5, padding="same", activation="relu", **init),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 5, activation="relu", **init),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(120, activation="relu", **init),
            layers.Dense(84, activation="relu", **init),
            layers.Dense(10, **init),
        ]
    )
    optimizer = keras.optimizers.AdamW(
        keras.optimizers.schedules.CosineDecay(LR, DECAY_STEPS, alpha=0.0),
        weight_decay=WEIGHT_DECAY,
        epsilon=1e-8,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    log = plain_data.EpochLog("keras", "accuracy", TARGET, higher_is_better=True)
    x_val, _ = splits["val"]
    model.fit(
        EpochBatches(*splits["train"], BATCH, SEED),
        epochs=EPOCHS,
        validation_data=splits["val"],
        validation_batch_size=len(x_val),
        callbacks=[RaceClock(log)],
        verbose=0,
    )
    final = {
        s: float(model.evaluate(*splits[s], batch_size=len(splits[s][0]), verbose=0)[1])
        for s in ("val", "test")
    }
    log.result(final, keras=keras.__version__, backend=keras.backend.backend())


if __name__ == "__main__":
    main()
