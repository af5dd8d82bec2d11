"""digits MLP (experiments/digits_mlp.toml) as a plain PyTorch eager script.

64 -> 256 -> 128 -> 10, ReLU, dropout 0.2 after each hidden layer, Adam(1e-3), batch 32,
40 epochs, validation accuracy after every epoch; target 0.97.

  python benchmarks/race/scripts/train_torch_mlp.py
"""

import plain_data  # noqa: I001  (first: it starts the script clock before torch loads)

import time

import torch
import torch.nn.functional as F
from torch import nn

from torch_common import accuracy, init_lecun, set_threads

EPOCHS, BATCH, LR, SEED, TARGET = 40, 32, 1e-3, 0, 0.97


def main() -> None:
    threads = set_threads()
    torch.manual_seed(SEED)
    splits = {
        k: (torch.from_numpy(x), torch.from_numpy(y))
        for k, (x, y) in plain_data.digits_flat().items()
    }
    x_train, y_train = splits["train"]
    model = nn.Sequential(
        nn.Linear(64, 256),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(128, 10),
    )
    model.apply(init_lecun)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    log = plain_data.EpochLog("torch", "accuracy", TARGET, higher_is_better=True)
    for epoch in range(EPOCHS):
        t0 = time.perf_counter()
        model.train()
        for rows in plain_data.epoch_batches(len(x_train), BATCH, SEED, epoch):
            idx = torch.from_numpy(rows)
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        log.epoch(time.perf_counter() - t0, accuracy(model, *splits["val"]))
    final = {s: accuracy(model, *splits[s]) for s in ("val", "test")}
    log.result(final, threads=threads, torch=torch.__version__)


if __name__ == "__main__":
    main()
