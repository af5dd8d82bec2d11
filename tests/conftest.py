"""Strict JAX for every test: rank promotion raises, tests run on CPU."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


def _classifier_run(tmp_path_factory, stem: str):
    from dlcore.config.loading import load_config
    from dlcore.experiment import run_experiment
    from tests.helpers import REPO

    cfg = load_config(REPO / "experiments" / f"{stem}.toml", ["train.epochs=4"])
    path = tmp_path_factory.mktemp("classifier") / stem
    run_experiment(cfg, path)
    return path


@pytest.fixture(scope="session")
def digits_classifier_run(tmp_path_factory):
    """A finished run of experiments/digits_classifier.toml, shrunk to a few seconds: the
    feature space of the generative models' Fréchet distance (``quality_classifier``)."""
    return _classifier_run(tmp_path_factory, "digits_classifier")


@pytest.fixture(scope="session")
def digits16_classifier_run(tmp_path_factory):
    """The same for 16x16 images (experiments/digits16_classifier.toml)."""
    return _classifier_run(tmp_path_factory, "digits16_classifier")


# The longest test files first. `make test` gives each of its two pytest-xdist workers whole
# files (--dist loadfile), in collection order; when a long file comes last, one worker
# runs it alone while the other waits. Starting with the long ones leaves only short files
# for the end. Within a file the order is unchanged.
LONGEST_FIRST = (
    "test_selectable.py",
    "test_processes.py",
    "test_gan.py",
    "test_resume_devices.py",
    "test_data_parallel.py",
    "test_experiments.py",
    "test_cnn_models.py",
    "test_gan_options.py",
    "test_resume.py",
    "test_transfer.py",
    "test_docs.py",
    "test_optuna_sweep.py",
    "test_population_hyper.py",
    "test_seq2seq_task.py",
    "test_captioning.py",
    "test_transformer.py",
    "test_bucketing.py",
    "test_native_rnn.py",
    "test_native_conv.py",
    "test_background_saves.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort
