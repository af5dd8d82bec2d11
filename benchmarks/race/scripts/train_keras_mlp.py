"""digits MLP (experiments/digits_mlp.toml) in Keras 3 on its JAX backend, with ``model.fit``.

64 -> 256 -> 128 -> 10, ReLU, dropout 0.2 after each hidden layer, Adam(1e-3), batch 32
(dlcore's batch order), 40 epochs, validation accuracy after every epoch; target 0.97.

  python benchmarks/race/scripts/train_keras_mlp.py
"""

import plain_data  # noqa: I001  (first: it starts the script clock before keras loads)
from keras_common import EpochBatches, RaceClock, keras

EPOCHS, BATCH, LR, SEED, TARGET = 40, 32, 1e-3, 0, 0.97


def main() -> None:
    keras.utils.set_random_seed(SEED)
    splits = plain_data.digits_flat()
    dense = dict(kernel_initializer="lecun_normal")
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu", **dense),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(128, activation="relu", **dense),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, **dense),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(LR, epsilon=1e-8),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    log = plain_data.EpochLog("keras", "accuracy", TARGET, higher_is_better=True)
    x_val, y_val = splits["val"]
    model.fit(
        EpochBatches(*splits["train"], BATCH, SEED),
        epochs=EPOCHS,
        validation_data=splits["val"],
        validation_batch_size=len(x_val),  # one evaluation batch, as dlcore's
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
