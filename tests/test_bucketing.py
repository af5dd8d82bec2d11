"""Length bucketing (dlcore.data.buckets): a (seed, epoch) order of trimmed one-bucket batches,
its checks, and a real bucketed seq2seq run that resumes exactly with one compile per width."""

import dataclasses

import jax
import numpy as np
import pytest

from dlcore.config.errors import ConfigError, FieldError
from dlcore.config.loading import load_config
from dlcore.data import BatchOrder, Dataset, Position, Split, StackedOrder
from dlcore.data.buckets import (
    BucketedOrder,
    bucket_order,
    pad_value,
    padding_fraction,
    quantile_widths,
    sequence_lengths,
)
from dlcore.data.sequences import DyckDepthConfig, ParityConfig, make_dyck_depth, make_parity
from dlcore.engine.loop import fit
from dlcore.experiment import build
from dlcore.runs.run_dir import RunDir
from tests.helpers import REPO


@pytest.fixture(scope="module")
def parity():
    return make_parity(ParityConfig(n_samples=400, min_len=2, max_len=20, seed=1))


def order_of(data, batch=16, seed=5, widths=4, field="x") -> BucketedOrder:
    return bucket_order(BatchOrder(len(data.train), batch, seed), data, field, widths)


def test_order_is_a_pure_function_of_seed_and_epoch(parity):
    a, b = order_of(parity), order_of(parity)
    b.schedule(3)  # consuming another epoch first changes nothing
    for epoch in (0, 1, 7):
        for x, y in zip(a.schedule(epoch), b.schedule(epoch), strict=True):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.indices(0), a.indices(1))
    assert not np.array_equal(a.indices(0), order_of(parity, seed=6).indices(0))
    # a resumed position yields the tail of the same epoch
    tail = list(a.batches(parity.train, Position(2, 5)))
    full = list(b.batches(parity.train, Position(2, 0)))[5:]
    assert [p for p, _ in tail] == [p for p, _ in full]
    for (_, u), (_, v) in zip(tail, full, strict=True):
        np.testing.assert_array_equal(u["x"], v["x"])


def test_each_epoch_uses_every_example_once_but_at_most_one_partial_batch_per_bucket(parity):
    order = order_of(parity)
    n, size = len(parity.train), order.base.batch_size
    assert sorted(np.concatenate(order.members)) == list(range(n))
    dropped = sum(len(m) % size for m in order.members)
    assert order.report()["dropped_per_epoch"] == dropped < size * len(order.widths)
    for epoch in (0, 1):
        rows, widths = order.schedule(epoch)
        assert rows.shape == (order.steps_per_epoch, size)
        assert len(np.unique(rows)) == rows.size == n - dropped
        for r, w in zip(rows, widths, strict=True):  # one bucket per batch
            bucket = order.widths.index(w)
            assert np.isin(r, order.members[bucket]).all()
    assert set(order.widths) == set(order.schedule(0)[1])  # every bucket trains
    left_out = [set(range(n)) - set(order.indices(e).ravel()) for e in (0, 1)]
    assert left_out[0] != left_out[1]  # a different few each epoch


def test_batches_are_trimmed_to_their_bucket_and_no_real_token_is_cut(parity):
    order = order_of(parity)
    lengths = sequence_lengths(parity.train.x, -1)
    rows, widths = order.schedule(0)
    batches = list(order.batches(parity.train, Position(0, 0)))
    assert len(batches) == len(rows) == order.steps_per_epoch
    for r, w, (_, batch) in zip(rows, widths, batches, strict=True):
        assert batch["x"].shape == (16, w) and batch["y"].shape == (16,)
        np.testing.assert_array_equal(batch["x"], parity.train.x[r, :w])
        np.testing.assert_array_equal(sequence_lengths(batch["x"], -1), lengths[r])
        narrower = [v for v in order.widths if v < w]
        assert lengths[r].max() <= w and lengths[r].min() > max(narrower, default=0)
    assert set(widths) == set(order.widths)


def test_per_step_targets_are_trimmed_with_the_inputs_unless_they_would_lose_tokens():
    dyck = make_dyck_depth(DyckDepthConfig(n_samples=200, max_len=12, seed=0))
    order = order_of(dyck, batch=8, widths=3)
    assert order.trimmed == ("x", "y")
    _, batch = next(iter(order.batches(dyck.train, Position(0, 0))))
    assert batch["x"].shape == batch["y"].shape
    # a seq2seq-like field of the same width, longer than its source in one row: kept whole
    x = np.array([[5, 6, 0, 0], [5, 0, 0, 0], [7, 8, 9, 0], [3, 0, 0, 0]], np.int32)
    y = np.array([[1, 4, 2, 0], [1, 4, 4, 2], [1, 2, 0, 0], [1, 2, 0, 0]], np.int32)
    s = Split(x, y)
    data = Dataset("toy", s, s, s, None, info={"vocab": ["<pad>", "<bos>", "<eos>"]})
    toy = bucket_order(BatchOrder(4, 2, 0), data, "x", [1, 3])
    assert toy.trimmed == ("x",) and toy.widths == (1, 3)
    for _, b in toy.batches(s, Position(0, 0)):
        assert b["y"].shape == (2, 4) and (b["x"] != 0).sum() == sequence_lengths(b["x"], 0).sum()


def test_pad_values_lengths_and_widths():
    x = np.array([[3, 0, 4, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(sequence_lengths(x, 0), [3, 0, 4])  # inner pads count
    np.testing.assert_array_equal(sequence_lengths(x[:, :, None].repeat(2, -1), 0), [3, 0, 4])
    s = Split(x.astype(np.int32), np.zeros(3, np.int32))
    assert pad_value(Dataset("a", s, s, s, 2), "x") == -1
    assert pad_value(Dataset("a", s, s, s, 2, info={"vocab": ["<pad>", "a"]}), "x") == 0
    assert pad_value(Dataset("a", s, s, s, 2, info={"pad": {"x": 9}}), "x") == 9
    assert quantile_widths(np.array([2, 3, 4, 5, 6, 7, 8, 9]), 4) == (3, 5, 7, 9)
    assert quantile_widths(np.array([5, 5, 5, 6]), 3) == (5, 6)


def test_padding_fraction_of_a_hand_example():
    # batch 1: lengths 1, 2 at width 2 -> 1 pad of 4; batch 2: 4, 4 at width 4 -> 0 of 8
    assert padding_fraction(np.array([[1, 2], [4, 4]]), np.array([2, 4])) == 1 / 12
    assert padding_fraction(np.array([[1, 2], [4, 4]]), np.array([4, 4])) == 5 / 16
    x = np.array([[1, -1, -1, -1], [1, 1, -1, -1], [1, 1, 1, 1], [1, 1, 1, 1]], np.int32)
    s = Split(x, np.zeros(4, np.int32))
    order = bucket_order(BatchOrder(4, 2, 0), Dataset("h", s, s, s, 2), "x", [2])
    report = order.report()
    assert report["widths"] == [2, 4] and report["padding_fraction"] == 1 / 12
    assert report["padding_fraction_unbucketed"] == 5 / 16  # 11 real of 16


def test_buckets_smaller_than_a_batch_join_the_next_wider_one():
    # lengths 1 x3, 2 x5, 3 x4, 5 x2 at widths 1, 2, 3, 5 with B = 4: the three of length 1
    # join width 2 (8 examples); the two of length 5 are too few and join width 3's bucket,
    # which then pads to 5
    lengths = [1] * 3 + [2] * 5 + [3] * 4 + [5] * 2
    x = np.full((len(lengths), 6), -1, np.int32)
    for i, n in enumerate(lengths):
        x[i, :n] = 1
    s = Split(x, np.zeros(len(x), np.int32))
    order = bucket_order(BatchOrder(len(x), 4, 0), Dataset("h", s, s, s, 2), "x", [1, 2, 3, 5])
    assert order.widths == (2, 5) and [len(m) for m in order.members] == [8, 6]
    assert order.steps_per_epoch == 3 and order.report()["dropped_per_epoch"] == 2
    order = bucket_order(BatchOrder(len(x), 3, 0), Dataset("h", s, s, s, 2), "x", [1, 2])
    assert order.widths == (1, 2, 5)  # a last width at the longest length is added
    assert [len(m) for m in order.members] == [3, 5, 6]


@pytest.mark.parametrize(
    "order, field, widths, message",
    [
        ("plain", "z", 4, "train.bucket_by: parity has no field 'z'; it has x, y"),
        ("plain", "y", 4, "train.bucket_by: parity's 'y' is int32 []; bucketing needs"),
        ("plain", "x", [4, 3], "train.bucket_widths: must be increasing positive widths"),
        ("plain", "x", [4, 99], "train.bucket_widths: [4, 99] must be <= 20, the width of 'x'"),
        ("streams", "x", 4, "train.bucket_by: this task reads its batches as 'streams'"),
        ("stacked", "x", 4, "train.bucket_by: a population stacks its members' batches"),
    ],
)
def test_bad_bucketing_is_one_line_naming_the_field(parity, order, field, widths, message):
    base = BatchOrder(len(parity.train), 8, 0, "streams" if order == "streams" else "shuffled")
    if order == "stacked":
        base = StackedOrder((base, dataclasses.replace(base, seed=1)))
    with pytest.raises(FieldError) as err:
        bucket_order(base, parity, field, widths)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "train, message",
    [
        (["train.bucket_by=x"], "train.bucket_by: needs mode = 'step'"),
        (["train.mode=step", "train.bucket_by=x", "train.bucket_widths=[]"], "bucket_widths: must"),
        (["train.mode=step", "train.bucket_by=x", "train.bucket_widths=[3,3]"], "bucket_widths:"),
        (["train.mode=step", "train.bucket_by=q"], "train.bucket_by: parity has no field 'q'"),
    ],
)
def test_bad_bucketing_configs_fail_before_training(train, message):
    path = REPO / "experiments" / "parity_lstm.toml"
    with pytest.raises(ConfigError) as err:
        build(load_config(path, train), str(path))
    assert len(str(err.value).splitlines()) == 1 and message in str(err.value)


# A real run: the shipped bucketed experiment, shrunk to seconds (a tanh RNN of 4 units
# compiles faster than the LSTM; the order and the loop are what is tested).
# A seq2seq run on length buckets (reversal with attention, shrunk): the stopped-and-resumed
# check below is also the seq2seq task's resume check (its state, its compiled greedy
# evaluation and its report-free fit).
SHRINK = [
    "data.n_samples=160",
    "data.symbols=4",
    "data.min_len=2",
    "data.max_len=8",
    "model.embed_dim=4",
    "model.hidden=8",
    "model.bidirectional=false",
    "optimizer.schedule.decay_steps=14",
    "train.epochs=2",
    "train.batch_size=16",
    "train.mode=step",
    "train.eval_every=1",
    "train.bucket_by=x",
    "train.bucket_widths=2",
    "train.log_every=1",
    "train.checkpoint_every=3",
]


class StopAt:
    """A stop request (and reporter) that fires once the loop reports step ``at``."""

    def __init__(self, at: int | None):
        self.at, self.requested, self.signum, self.exit_code = at, False, None, 0

    def start(self, total_steps, done_steps): ...
    def log(self, record): ...
    def close(self): ...

    def advance(self, step):
        self.requested = self.requested or (self.at is not None and step >= self.at)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bucketed")
    cfg = load_config(REPO / "experiments" / "reversal_attention.toml", SHRINK)
    built = build(cfg)

    def train(name, stop=None, resume=False):
        run = RunDir(root / name) if resume else RunDir.create(root / name)
        stop = stop or StopAt(None)
        return fit(built.task, built.data, cfg.train, cfg.seed, run, resume, stop, stop)

    ref = train("ref")
    cut = train("cut", StopAt(5))
    resumed = train("cut", resume=True)
    return root, built, ref, cut, resumed


def test_a_stopped_bucketed_run_resumes_bit_identically(runs):
    root, built, ref, cut, resumed = runs
    assert cut.status == "interrupted" and int(cut.state.step) == 5
    assert resumed.status == ref.status == "completed"
    assert resumed.final == ref.final and resumed.best == ref.best
    assert RunDir(root / "cut").read_metrics() == RunDir(root / "ref").read_metrics()
    for a, b in zip(*map(jax.tree.leaves, (resumed.state, ref.state)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_one_compile_per_bucket_width_and_the_padding_report(runs):
    _, built, ref, _, resumed = runs
    cfg = built.cfg
    order = bucket_order(
        built.task.make_order(len(built.data.train), 16, cfg.seed), built.data, "x", 2
    )
    used = {int(w) for e in range(cfg.train.epochs) for w in order.schedule(e)[1]}
    assert len(used) == 2 and ref.traces["train_step"] == len(used)
    assert resumed.traces["train_step"] <= len(used)
    report = ref.timing["bucketing"]
    assert report == order.report() and report["widths"] == sorted(used)
    assert report["padding_fraction"] < report["padding_fraction_unbucketed"]
