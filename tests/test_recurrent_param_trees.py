"""Parameter names and shapes of every recurrent model, against a golden file.

Checkpoints and configs address parameters by these paths, so a rename must be deliberate:
update tests/golden/recurrent_param_trees.json in the same commit. A cell added to CELLS
without a golden entry fails here too.
"""

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from flax.traverse_util import flatten_dict

from dlcore.recurrent import CELLS, RNN, Bidirectional, GRUCell, LSTMCell, StackedRNN, make_cell

GOLDEN = Path(__file__).parent / "golden" / "recurrent_param_trees.json"
X = jnp.ones((2, 5, 3))  # [B, T, D]; every layer below has H = 4

MODELS = {
    **{f"rnn_{name}": (lambda name=name: RNN(make_cell(name, 4)), {}) for name in CELLS},
    "rnn_lstm_learned_carry": (lambda: RNN(LSTMCell(4), initial_carry="learned"), {}),
    "rnn_gru_reset_after": (lambda: RNN(GRUCell(4, reset_after=True)), {}),
    "bidirectional_gru": (lambda: Bidirectional(RNN(GRUCell(4)), RNN(GRUCell(4))), {}),
    "stacked_lstm_2_layers": (lambda: StackedRNN(4, num_layers=2), {"train": False}),
    "stacked_bidirectional_gru": (
        lambda: StackedRNN(4, cell="gru", bidirectional=True),
        {"train": False},
    ),
}


def param_tree(name: str) -> dict[str, list[int]]:
    build, kwargs = MODELS[name]
    init = functools.partial(build().init, **kwargs)
    params = jax.eval_shape(init, jax.random.key(0), X)["params"]  # shapes only, no compile
    return {"/".join(k): list(v.shape) for k, v in sorted(flatten_dict(params).items())}


def test_golden_file_covers_every_model_and_every_cell():
    golden = json.loads(GOLDEN.read_text())
    assert set(golden) == set(MODELS)
    assert {f"rnn_{name}" for name in CELLS} <= set(golden)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_param_tree_matches_golden(name):
    assert param_tree(name) == json.loads(GOLDEN.read_text())[name]
