"""LeNet-5 on digits (experiments/digits_lenet5.toml) as a plain PyTorch eager script.

32x32 digits minus the channel mean; random crops (zero-pad 3, crop back at a uniform
offset per image); conv 5x5x6 'same' -> ReLU -> max-pool 2 -> conv 5x5x16 -> ReLU ->
max-pool 2 -> 120 -> 84 -> 10; AdamW(2e-3, weight decay 1e-4 on kernels only) with a cosine
decay to 0 over 1170 updates; batch 32, 30 epochs; target validation accuracy 0.985.

  python benchmarks/race/scripts/train_torch_lenet.py
"""

import plain_data  # noqa: I001  (first: it starts the script clock before torch loads)

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from torch_common import accuracy, init_lecun, set_threads

EPOCHS, BATCH, LR, WEIGHT_DECAY, DECAY_STEPS, PAD = 30, 32, 2e-3, 1e-4, 1170, 3
SEED, TARGET = 0, 0.985


def random_crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Per image: zero-pad by ``pad`` and cut the ``[H, W]`` window at a random offset."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (n, 1, 1))
    left = torch.randint(0, 2 * pad + 1, (n, 1, 1))
    rows = top + torch.arange(h).view(1, h, 1)  # [N, H, 1]
    cols = left + torch.arange(w).view(1, 1, w)  # [N, 1, W]
    return padded[torch.arange(n).view(n, 1, 1), 0, rows, cols].unsqueeze(1)


def cosine_rate(step: int) -> float:
    """optax's cosine decay: ``lr (1 + cos(pi min(t, T) / T)) / 2``."""
    return LR * 0.5 * (1.0 + math.cos(math.pi * min(step, DECAY_STEPS) / DECAY_STEPS))


def main() -> None:
    threads = set_threads()
    torch.manual_seed(SEED)
    splits = {
        k: (torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y))
        for k, (x, y) in plain_data.digits_images(32).items()
    }
    x_train, y_train = splits["train"]
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 6 * 6, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )  # fmt: skip
    model.apply(init_lecun)
    kernels = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    opt = torch.optim.AdamW(
        [{"params": kernels, "weight_decay": WEIGHT_DECAY}, {"params": biases, "weight_decay": 0}],
        lr=LR,
        eps=1e-8,
    )
    log = plain_data.EpochLog("torch", "accuracy", TARGET, higher_is_better=True)
    step = 0
    for epoch in range(EPOCHS):
        t0 = time.perf_counter()
        model.train()
        for rows in plain_data.epoch_batches(len(x_train), BATCH, SEED, epoch):
            idx = torch.from_numpy(rows)
            for group in opt.param_groups:
                group["lr"] = cosine_rate(step)
            loss = F.cross_entropy(model(random_crop(x_train[idx], PAD)), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        log.epoch(time.perf_counter() - t0, accuracy(model, *splits["val"]))
    final = {s: accuracy(model, *splits[s]) for s in ("val", "test")}
    log.result(final, threads=threads, torch=torch.__version__)


if __name__ == "__main__":
    main()
