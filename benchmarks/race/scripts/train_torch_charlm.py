"""Character-level LSTM language model (experiments/charlm_lstm.toml) in plain PyTorch eager.

The standard library's source as characters; embedding 64 -> LSTM 256 -> dense over the
vocabulary. Truncated BPTT: the training windows are read as 32 parallel streams, 100
characters per update, the LSTM state carried (detached) from one update to the next and
reset at each epoch. Adam(2e-3), gradients clipped to global norm 1, 3 epochs; after each
epoch the held-out windows (2000 characters, from a zero state) give bits per character;
target 2.0.

  python benchmarks/race/scripts/train_torch_charlm.py [--epochs N] [--train-files N]
"""

import plain_data  # noqa: I001  (first: it starts the script clock before torch loads)

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from torch_common import lecun_normal_, set_threads

BATCH, SEQ_LEN, EVAL_LEN, MIN_COUNT, LR, CLIP, SEED, TARGET = 32, 100, 2000, 20, 2e-3, 1.0, 0, 2.0
EMBED, HIDDEN = 64, 256


class CharLM(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, vocab)
        # dlcore's init: embedding N(0, 1/EMBED), LeCun-normal input and output kernels, an
        # orthogonal recurrent block per gate, zero biases but the forget gate's 1.
        nn.init.normal_(self.embed.weight, 0.0, EMBED**-0.5)
        lecun_normal_(self.lstm.weight_ih_l0)
        for gate in self.lstm.weight_hh_l0.data.chunk(4):  # gates i, f, g, o (as dlcore)
            nn.init.orthogonal_(gate)
        nn.init.zeros_(self.lstm.bias_ih_l0)
        nn.init.zeros_(self.lstm.bias_hh_l0)
        self.lstm.bias_ih_l0.data[HIDDEN : 2 * HIDDEN] = 1.0
        lecun_normal_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x_BxT, state=None):
        h_BxTxH, state = self.lstm(self.embed(x_BxT.clamp(min=0)), state)
        return self.head(h_BxTxH), state


@torch.no_grad()
def bits_per_char(model: CharLM, x_NxT: torch.Tensor, y_NxT: torch.Tensor) -> float:
    """Held-out windows from a zero state; padded targets (-1) are not counted."""
    model.eval()
    logits, _ = model(x_NxT)
    nll = F.cross_entropy(logits.flatten(0, 1), y_NxT.flatten(), ignore_index=-1, reduction="sum")
    return plain_data.bits_per_char(float(nll), float((y_NxT >= 0).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-files", type=int, default=None, help="first N training files")
    args = parser.parse_args()
    threads = set_threads()
    torch.manual_seed(SEED)
    splits, vocab = plain_data.stdlib_chars(SEQ_LEN, EVAL_LEN, MIN_COUNT, args.train_files)
    splits = {k: (torch.from_numpy(x), torch.from_numpy(y)) for k, (x, y) in splits.items()}
    x_train, y_train = splits["train"]
    model = CharLM(vocab)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    log = plain_data.EpochLog("torch", "bits_per_char", TARGET, higher_is_better=False)
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        state = None  # every stream starts over at each epoch
        for rows in plain_data.stream_batches(len(x_train), BATCH):
            idx = torch.from_numpy(rows)
            logits, state = model(x_train[idx], state)
            state = tuple(s.detach() for s in state)  # no gradient across chunks
            loss = F.cross_entropy(logits.flatten(0, 1), y_train[idx].flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
        log.epoch(time.perf_counter() - t0, bits_per_char(model, *splits["val"]))
    final = {s: bits_per_char(model, *splits[s]) for s in ("val", "test")}
    log.result(final, threads=threads, torch=torch.__version__, train_files=args.train_files)


if __name__ == "__main__":
    main()
