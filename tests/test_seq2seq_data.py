"""The generated seq2seq data sets: reversal, sorting, dates and addition."""

import datetime

import numpy as np
import pytest

from dlcore.config.errors import ConfigError
from dlcore.config.loading import load_config
from dlcore.data.dates import DATE_FORMATS, date_vocab, render_date
from dlcore.data.registry import DATASETS, load_dataset
from dlcore.data.seq2seq_tasks import SPECIALS, decode_tokens, encode_sources
from tests.helpers import write_toml

NAMES = ("reversal", "sorting", "dates", "addition")


def _data(name: str, **fields):
    return load_dataset(DATASETS[name].config(name=name, n_samples=120, **fields))


def _pairs(data, split="train"):
    vocab = tuple(data.info["vocab"])
    s = data.split(split)
    return [
        (decode_tokens(x, vocab), decode_tokens(y, vocab)) for x, y in zip(s.x, s.y, strict=True)
    ]


@pytest.fixture(scope="module")
def sets():
    return {name: _data(name) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_token_convention_and_padding(sets, name):
    data = sets[name]
    vocab = data.info["vocab"]
    assert tuple(vocab[:3]) == SPECIALS and data.info["vocab_size"] == len(vocab)
    assert data.spec().fields["x"].role == "tokens" and data.spec().fields["y"].role == "tokens"
    for split in ("train", "val", "test"):
        x, y = data.split(split).x, data.split(split).y
        assert x.dtype == np.int32 and y.dtype == np.int32
        n_src = (x != 0).sum(axis=1)
        # sources: real tokens first, then only padding; no <bos>/<eos>
        assert np.all(x[np.arange(x.shape[1]) >= n_src[:, None]] == 0)
        assert np.all((x == 0) | (x > 2)) and n_src.min() >= 1
        # targets: <bos>, tokens, exactly one <eos>, then padding
        assert np.all(y[:, 0] == 1) and np.all((y == 2).sum(axis=1) == 1)
        n_tgt = (y != 0).sum(axis=1)
        assert np.all(y[np.arange(len(y)), n_tgt - 1] == 2)
        assert np.all(y[np.arange(y.shape[1]) >= n_tgt[:, None]] == 0)
        assert np.all(y[:, 1:][(y[:, 1:] != 0) & (y[:, 1:] != 2)] > 2)


def test_reversal_and_sorting_targets(sets):
    for source, target in _pairs(sets["reversal"]):
        assert target == source[::-1] and 4 <= len(source) <= 16
    for source, target in _pairs(sets["sorting"]):
        assert target == "".join(sorted(source))
    assert set("".join(s for s, _ in _pairs(sets["reversal"]))) == set("abcdefghij")


def test_addition_is_correct(sets):
    pairs = _pairs(sets["addition"]) + _pairs(sets["addition"], "test")
    for source, target in pairs:
        a, b = source.split("+")
        assert int(a) + int(b) == int(target) and target == str(int(target))
        assert a == str(int(a)) and b == str(int(b))  # no leading zeros
    assert max(len(s) for s, _ in pairs) <= sets["addition"].train.x.shape[1] == 9


@pytest.mark.parametrize("fmt", sorted(DATE_FORMATS))
def test_every_date_format_round_trips_through_datetime(fmt):
    vocab = set(date_vocab())
    start = datetime.date(1950, 1, 1).toordinal()
    for offset in range(0, 36500, 997):  # every month and weekday, single and double digits
        date = datetime.date.fromordinal(start + offset)
        text = render_date(date, fmt)
        assert datetime.datetime.strptime(text, DATE_FORMATS[fmt][1]).date() == date
        assert set(text) <= vocab


def test_dates_targets_are_the_iso_dates_of_the_sources(sets):
    data = sets["dates"]
    fmts = {fmt: f for fmt, (_, f) in DATE_FORMATS.items()}
    seen = set()
    for source, target in _pairs(data):
        parsed = []
        for name, f in fmts.items():
            try:
                parsed.append((name, datetime.datetime.strptime(source, f).date()))
            except ValueError:
                continue
        assert parsed and all(d.isoformat() == target for _, d in parsed), source
        seen.update(name for name, _ in parsed)
    assert seen == set(DATE_FORMATS)
    assert render_date(datetime.date(2019, 3, 12), "slashes") == "12/03/2019"  # day first


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = _data("dates"), _data("dates"), _data("dates", seed=1)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    r, s = _data("reversal"), _data("reversal", seed=3)
    assert r.fingerprint() != s.fingerprint()


def test_test_max_len_draws_longer_test_inputs():
    data = _data("reversal", max_len=8, test_max_len=20)
    train_len = (data.train.x != 0).sum(axis=1)
    test_len = (data.test.x != 0).sum(axis=1)
    assert train_len.max() <= 8 < test_len.max() <= 20
    assert data.train.x.shape[1] == data.test.x.shape[1] == 20 and data.test.y.shape[1] == 22
    assert all(t == s[::-1] for s, t in _pairs(data, "test"))


def test_encode_sources_names_unknown_characters_and_width():
    vocab = SPECIALS + tuple("abc")
    with pytest.raises(ValueError, match=r"outside the vocabulary: 'xz'"):
        encode_sources(["abzx"], vocab, 8)
    with pytest.raises(ValueError, match="at most 2 fit"):
        encode_sources(["abc"], vocab, 2)


@pytest.mark.parametrize(
    "data, field",
    [
        ({"name": "reversal", "min_len": 9, "max_len": 3}, "data"),
        ({"name": "reversal", "max_len": 9, "test_max_len": 3}, "data"),
        ({"name": "dates", "formats": ["slashes", "nope"]}, "data.formats"),
        ({"name": "addition", "max_digits": 40}, "data.max_digits"),
    ],
)
def test_bad_data_sections_name_the_field(tmp_path, data, field):
    cfg = {"data": data, "model": {"name": "mlp"}, "train": {"epochs": 1}}
    with pytest.raises(ConfigError) as err:
        load_config(write_toml(tmp_path / "c.toml", cfg))
    assert field in str(err.value)
