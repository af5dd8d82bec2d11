"""Strict JAX for every test: rank promotion raises, tests run on CPU."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture(scope="session")
def digits_classifier_run(tmp_path_factory):
    """A finished run of experiments/digits_classifier.toml, shrunk to a few seconds: the
    feature space of the generative models' Fréchet distance (``quality_classifier``)."""
    from dlcore.config.loading import load_config
    from dlcore.experiment import run_experiment
    from tests.helpers import REPO

    cfg = load_config(REPO / "experiments" / "digits_classifier.toml", ["train.epochs=4"])
    path = tmp_path_factory.mktemp("classifier") / "digits_classifier"
    run_experiment(cfg, path)
    return path
