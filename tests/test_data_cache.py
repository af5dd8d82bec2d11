"""The cache of built data sets (``dlcore.data.cache``): a later process reads back the
very arrays (same fingerprint) without building, another config or a damaged file builds
afresh, and nothing is cached unless enabled or for data sets not listed."""

import numpy as np
import pytest

from dlcore.data import cache
from dlcore.data.digits import DigitsConfig
from dlcore.data.registry import load_dataset
from dlcore.data.synthetic import XorConfig


def never_built():
    raise AssertionError("built instead of read from the cache")


@pytest.fixture
def enabled(tmp_path):
    cache.enable(tmp_path)
    yield tmp_path
    cache.enable(None)


def test_a_cached_data_set_comes_back_bit_identical_without_building(enabled):
    cfg = DigitsConfig(train_per_class=20)
    built = cache.cached(cfg, lambda: load_dataset(cfg))
    again = cache.cached(cfg, never_built)
    assert again.fingerprint() == built.fingerprint()
    assert (again.name, again.num_classes, again.info, again.roles) == (
        built.name,
        built.num_classes,
        built.info,
        built.roles,
    )
    for split in ("train", "val", "test"):
        for name, array in built.split(split).fields.items():
            assert again.split(split)[name].dtype == array.dtype
            assert np.array_equal(again.split(split)[name], array)


def test_another_config_or_a_damaged_file_builds_afresh(enabled):
    cfg = DigitsConfig(train_per_class=20)
    built = cache.cached(cfg, lambda: load_dataset(cfg))
    other = DigitsConfig(train_per_class=21)
    with pytest.raises(AssertionError, match="built instead"):
        cache.cached(other, never_built)
    (written,) = enabled.glob("digits-*.npz")
    written.write_bytes(b"not an npz file")
    assert cache.cached(cfg, lambda: built).fingerprint() == built.fingerprint()
    assert cache.cached(cfg, never_built).fingerprint() == built.fingerprint()  # rewritten


def test_nothing_is_cached_when_off_or_for_data_sets_not_listed(tmp_path):
    cfg = DigitsConfig(train_per_class=20)
    with pytest.raises(AssertionError, match="built instead"):
        cache.cached(cfg, never_built)  # off: always built
    cache.enable(tmp_path)
    try:
        xor = XorConfig()
        cache.cached(xor, lambda: load_dataset(xor))
        assert list(tmp_path.iterdir()) == []
    finally:
        cache.enable(None)
