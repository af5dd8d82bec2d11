"""Character-level LSTM language model (experiments/charlm_lstm.toml) in Keras 3 on JAX.

Embedding 64 -> LSTM 256 -> dense over the vocabulary. Truncated BPTT the Keras way: a
``stateful`` LSTM fed the 32 parallel streams in order (``shuffle=False``), 100 characters
per update, its state reset at each epoch. Adam(2e-3) with ``global_clipnorm=1``, 3 epochs;
after each epoch a stateless twin with the same weights reads the held-out windows (2000
characters, from a zero state) for bits per character; target 2.0.

  python benchmarks/race/scripts/train_keras_charlm.py [--epochs N] [--train-files N]
"""

import plain_data  # noqa: I001  (first: it starts the script clock before keras loads)
from keras_common import RaceClock, keras

import argparse

import numpy as np

BATCH, SEQ_LEN, EVAL_LEN, MIN_COUNT, LR, CLIP, SEED, TARGET = 32, 100, 2000, 20, 2e-3, 1.0, 0, 2.0
EMBED, HIDDEN = 64, 256


def build(vocab: int, batch_size: int | None, stateful: bool) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((None,), batch_size=batch_size, dtype="int32"),
            keras.layers.Embedding(
                vocab, EMBED, embeddings_initializer=keras.initializers.RandomNormal(0, EMBED**-0.5)
            ),
            keras.layers.LSTM(
                HIDDEN,
                return_sequences=True,
                stateful=stateful,
                kernel_initializer="lecun_normal",
                recurrent_initializer="orthogonal",
                unit_forget_bias=True,
            ),
            keras.layers.Dense(vocab, kernel_initializer="lecun_normal"),
        ]
    )


class ResetStreams(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.layers[1].reset_state()  # the streams start over


def held_out_bits(twin: keras.Model, x_NxT: np.ndarray, y_NxT: np.ndarray):
    """Bits per character of ``twin`` on padded held-out windows (targets -1 not counted)."""

    def evaluate(model: keras.Model) -> float:
        twin.set_weights(model.get_weights())
        logits = twin.predict(np.maximum(x_NxT, 0), batch_size=len(x_NxT), verbose=0)
        logits = logits.astype(np.float64)
        top = logits.max(-1, keepdims=True)
        log_z = top[..., 0] + np.log(np.exp(logits - top).sum(-1))
        picked = np.take_along_axis(logits, np.maximum(y_NxT, 0)[..., None], -1)[..., 0]
        counted = y_NxT >= 0
        return plain_data.bits_per_char(float(((log_z - picked) * counted).sum()), counted.sum())

    return evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-files", type=int, default=None, help="first N training files")
    args = parser.parse_args()
    keras.utils.set_random_seed(SEED)
    splits, vocab = plain_data.stdlib_chars(SEQ_LEN, EVAL_LEN, MIN_COUNT, args.train_files)
    x_train, y_train = splits["train"]
    rows = plain_data.stream_batches(len(x_train), BATCH).reshape(-1)  # batch n = window n
    model = build(vocab, BATCH, stateful=True)
    model.compile(
        optimizer=keras.optimizers.Adam(LR, epsilon=1e-8, global_clipnorm=CLIP),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    twin = build(vocab, None, stateful=False)
    log = plain_data.EpochLog("keras", "bits_per_char", TARGET, higher_is_better=False)
    model.fit(
        x_train[rows].astype(np.int32),
        y_train[rows].astype(np.int32),
        batch_size=BATCH,
        epochs=args.epochs,
        shuffle=False,
        callbacks=[ResetStreams(), RaceClock(log, held_out_bits(twin, *splits["val"]))],
        verbose=0,
    )
    final = {s: held_out_bits(twin, *splits[s])(model) for s in ("val", "test")}
    log.result(
        final,
        keras=keras.__version__,
        backend=keras.backend.backend(),
        train_files=args.train_files,
    )


if __name__ == "__main__":
    main()
