"""dlcore.interop against PyTorch: committed references, round trips and error messages.

``tests/references/torch_layers.npz`` comes from ``scripts/torch_refs/layers.py`` (run by hand
with PyTorch): each case's state dict is imported into the dlcore module, whose output and
input gradient must match PyTorch's to 1e-10 in float64. PyTorch is not imported here.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.experiment.sampling import generate
from dlcore.interop import (
    load_safetensors,
    load_torch_state_dict,
    save_safetensors,
    torch_state_dict,
)
from dlcore.layers import BatchNorm, Conv1D, Conv2D, ConvTranspose2D, LayerNorm
from dlcore.models.mlp import MLP
from dlcore.models.rnn import SequenceModel
from dlcore.recurrent import LSTMCell, StackedRNN
from tests.helpers import REPO
from tests.test_readme import python_blocks

REFS = np.load(REPO / "tests" / "references" / "torch_layers.npz")
TOL = 1e-10


def _sd(case: str) -> dict[str, np.ndarray]:
    head = f"{case}/sd/"
    return {k[len(head) :]: REFS[k] for k in REFS.files if k.startswith(head)}


def _ref(case: str, name: str) -> np.ndarray:
    return REFS[f"{case}/{name}"]


def _nchw_to_nhwc(a):  # PyTorch's channels-first layout -> dlcore's channels-last
    return np.moveaxis(a, 1, -1)


def _nhwc_to_nchw(a):
    return np.moveaxis(a, -1, 1)


def _same(a):
    return a


def _seq_kwargs(case):
    return {"lengths": jnp.asarray(_ref(case, "lengths"))} if case == "lstm_packed" else {}


# case -> (module, mapping, PyTorch->dlcore input layout, dlcore->PyTorch output layout,
#          call keyword arguments)
CASES = {
    "linear": (lambda: nn.Dense(3), {"": ("linear", "")}, _same, _same, {}),
    "embedding": (lambda: nn.Embed(7, 3), {"": ("embedding", "")}, _same, _same, {}),
    "conv1d": (
        lambda: Conv1D(6, 3, stride=2, padding=2, dilation=2, groups=2),
        {"": ("conv1d", "")},
        _nchw_to_nhwc,
        _nhwc_to_nchw,
        {},
    ),
    "conv2d": (
        lambda: Conv2D(4, (3, 2), stride=(2, 1), padding=(1, 0)),
        {"": ("conv2d", "")},
        _nchw_to_nhwc,
        _nhwc_to_nchw,
        {},
    ),
    "conv_transpose2d": (
        lambda: ConvTranspose2D(2, (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2)),
        {"": ("conv_transpose2d", "")},
        _nchw_to_nhwc,
        _nhwc_to_nchw,
        {},
    ),
    "batch_norm_eval": (
        BatchNorm,
        {"": ("batch_norm", "")},
        _nchw_to_nhwc,
        _nhwc_to_nchw,
        {"train": False},
    ),
    "layer_norm": (LayerNorm, {"": ("layer_norm", "")}, _same, _same, {}),
    "rnn": (
        lambda: StackedRNN(4, num_layers=2, cell="rnn_tanh", bidirectional=True),
        {"": ("rnn", "")},
        _same,
        _same,
        {"train": False},
    ),
    "lstm": (
        lambda: StackedRNN(4, num_layers=2, bidirectional=True),
        {"": ("lstm", "")},
        _same,
        _same,
        {"train": False},
    ),
    "lstm_packed": (
        lambda: StackedRNN(4, num_layers=1, bidirectional=True),
        {"": ("lstm", "")},
        _same,
        _same,
        {"train": False},
    ),
    "sequential": (
        lambda: MLP(widths=(5,), out_features=3, norm="batch"),
        {
            "0": ("linear", "Dense_0"),
            "1": ("batch_norm", "BatchNorm_0"),
            "3": ("linear", "Dense_1"),
        },
        _same,
        _same,
        {"train": False},
    ),
    "char_lm": (
        lambda: SequenceModel(out_features=6, vocab_size=6, embed_dim=3, features=4),
        {
            "embed": ("embedding", "Embed_0"),
            "lstm": ("lstm", "StackedRNN_0"),
            "fc": ("linear", "head"),
        },
        _same,
        _same,
        {"train": False},
    ),
}


def _imported(case: str):
    """(module, variables from PyTorch's state dict, dlcore-layout input, call kwargs)."""
    make, mapping, to_dl, _, kwargs = CASES[case]
    module, x = make(), jnp.asarray(to_dl(_ref(case, "x")))
    kwargs = {**kwargs, **_seq_kwargs(case)}
    like = jax.eval_shape(lambda: module.init(jax.random.key(0), x, **kwargs))
    return module, load_torch_state_dict(_sd(case), mapping, like), x, kwargs


@pytest.mark.parametrize("case", sorted(CASES))
def test_imported_layer_matches_pytorch(case):
    _, _, to_dl, to_torch, _ = CASES[case]
    with jax.enable_x64(True):
        module, variables, x, kwargs = _imported(case)
        if not jnp.issubdtype(x.dtype, jnp.floating):  # token ids: the output only
            y = module.apply(variables, x, **kwargs)
            np.testing.assert_allclose(to_torch(np.asarray(y)), _ref(case, "y"), atol=TOL)
            return
        y, vjp = jax.vjp(lambda x: module.apply(variables, x, **kwargs), x)
        (dx,) = vjp(jnp.asarray(to_dl(_ref(case, "g"))))
    assert y.dtype == jnp.float64
    np.testing.assert_allclose(to_torch(np.asarray(y)), _ref(case, "y"), rtol=0, atol=TOL)
    np.testing.assert_allclose(to_torch(np.asarray(dx)), _ref(case, "dx"), rtol=0, atol=TOL)


def test_batch_norm_train_uses_batch_statistics_and_pytorch_running_averages():
    case = "batch_norm_train"
    with jax.enable_x64(True):
        module = BatchNorm(momentum=0.9, unbiased_running_var=True)  # PyTorch momentum 0.1
        x = jnp.asarray(_nchw_to_nhwc(_ref(case, "x")))
        like = jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False))
        variables = load_torch_state_dict(_sd(case), {"": ("batch_norm", "")}, like)

        def run(x):
            return module.apply(variables, x, train=True, mutable=["batch_stats"])

        y, vjp, updates = jax.vjp(run, x, has_aux=True)
        (dx,) = vjp(jnp.asarray(_nchw_to_nhwc(_ref(case, "g"))))
    np.testing.assert_allclose(_nhwc_to_nchw(np.asarray(y)), _ref(case, "y"), rtol=0, atol=TOL)
    np.testing.assert_allclose(_nhwc_to_nchw(np.asarray(dx)), _ref(case, "dx"), rtol=0, atol=TOL)
    stats = updates["batch_stats"]["BatchNorm_0"]
    # dlcore keeps running averages in float32 (module docstring), hence the looser check.
    np.testing.assert_allclose(stats["mean"], _ref(case, "mean_after"), rtol=1e-6)
    np.testing.assert_allclose(stats["var"], _ref(case, "var_after"), rtol=1e-6)


def test_lstm_cell_step_matches_pytorch():
    case = "lstm_cell"
    with jax.enable_x64(True):
        cell = LSTMCell(4)
        carry = {"h": jnp.asarray(_ref(case, "h0")), "c": jnp.asarray(_ref(case, "c0"))}
        x = jnp.asarray(_ref(case, "x"))
        like = jax.eval_shape(lambda: cell.init(jax.random.key(0), carry, x))
        variables = load_torch_state_dict(_sd(case), {"": ("lstm", "")}, like)
        (new, h), vjp = jax.vjp(lambda x: cell.apply(variables, carry, x), x)
        (dx,) = vjp(
            ({"h": jnp.zeros_like(h), "c": jnp.zeros_like(h)}, jnp.asarray(_ref(case, "g")))
        )
    np.testing.assert_allclose(h, _ref(case, "y"), rtol=0, atol=TOL)
    np.testing.assert_allclose(new["c"], _ref(case, "c_out"), rtol=0, atol=TOL)
    np.testing.assert_allclose(dx, _ref(case, "dx"), rtol=0, atol=TOL)


def test_readme_snippet_samples_from_a_pytorch_char_lm(tmp_path, monkeypatch):
    # What PyTorch's safetensors.torch.save_file(lm.state_dict(), path) writes: float32.
    save_safetensors(
        {k: v.astype(np.float32) for k, v in _sd("char_lm").items()},
        tmp_path / "charlm.safetensors",
    )
    # The README's "Loading PyTorch weights" block, as written, float32 as a user runs it.
    (block,) = [b for b in python_blocks() if "load_torch_state_dict" in b]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102
    model, variables, text, vocab = (scope[k] for k in ("model", "variables", "text", "vocab"))
    assert len(text) == 20 and set(text) <= set(vocab)
    tokens = jnp.asarray(_ref("char_lm", "x"))
    logits = model.apply(variables, tokens, train=False)
    assert logits.dtype == jnp.float32
    np.testing.assert_allclose(logits, _ref("char_lm", "y"), rtol=0, atol=1e-5)
    greedy = generate(
        model, variables["params"], tokens[0], jax.random.key(0), length=1, temperature=0
    )
    assert int(greedy[0]) == int(np.argmax(_ref("char_lm", "y")[0, -1]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_round_trips_through_safetensors(case, tmp_path):
    mapping = CASES[case][1]
    with jax.enable_x64(True):
        _, variables, _, _ = _imported(case)
    exported = torch_state_dict(variables, mapping)
    save_safetensors(exported, tmp_path / "m.safetensors")
    back = load_safetensors(tmp_path / "m.safetensors")
    original = _sd(case)
    assert sorted(back) == sorted(original)
    for key, value in original.items():
        if "bias_hh" in key:  # both biases only reach the output as their sum
            np.testing.assert_array_equal(back[key], 0.0)
            ih = key.replace("bias_hh", "bias_ih")
            np.testing.assert_allclose(back[ih], original[ih] + value, rtol=0, atol=1e-15)
        elif "bias_ih" not in key and "num_batches_tracked" not in key:
            np.testing.assert_array_equal(back[key], value)
    # dlcore -> PyTorch -> dlcore is the identity, read from the file this time.
    again = load_torch_state_dict(tmp_path / "m.safetensors", mapping, variables)
    jax.tree.map(np.testing.assert_array_equal, again, variables)


def _linear_like():
    return {"params": {"kernel": np.zeros((4, 3)), "bias": np.zeros(3)}}


@pytest.mark.parametrize(
    "state, mapping, message",
    [
        (
            {"weight": np.zeros((3, 5)), "bias": np.zeros(3)},
            {"": ("linear", "")},
            "PyTorch key 'weight' has shape (3, 5) but dlcore '<root>' (linear) expects (3, 4)",
        ),
        ({"weight": np.zeros((3, 4))}, {"": ("linear", "")}, "missing PyTorch key(s) 'bias'"),
        (
            {"fc.weight": np.zeros((3, 4)), "fc.bias": np.zeros(3), "fc.scale": np.zeros(3)},
            {"fc": ("linear", "")},
            "unexpected PyTorch key(s) 'fc.scale' for dlcore '<root>' (linear)",
        ),
        (
            {"weight": np.zeros((3, 4)), "bias": np.zeros(3), "extra.weight": np.zeros(1)},
            {"": ("linear", "")},
            "unexpected PyTorch key(s) 'extra.weight'",
        ),
        ({"weight": np.zeros((3, 4))}, {"": ("dense", "")}, "PyTorch layer kind"),
        (
            {},
            {"enc": ("linear", ""), "enc.0": ("linear", "")},
            "mapping prefixes 'enc' and 'enc.0' overlap",
        ),
        (
            {},
            {"fc": ("linear", "Dense_9")},
            "dlcore path 'Dense_9' is not in the model; params under '<root>': bias, kernel",
        ),
    ],
)
def test_import_errors_name_the_key_and_both_shapes(state, mapping, message):
    with pytest.raises(ValueError) as err:
        load_torch_state_dict(state, mapping, _linear_like())
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unset_dlcore_variables_are_refused_unless_not_strict():
    like = {"params": {"a": _linear_like()["params"], "b": _linear_like()["params"]}}
    state = {"weight": np.ones((3, 4)), "bias": np.ones(3)}
    with pytest.raises(ValueError, match="'params/b/bias', 'params/b/kernel' get no PyTorch"):
        load_torch_state_dict(state, {"": ("linear", "a")}, like)
    loose = load_torch_state_dict(state, {"": ("linear", "a")}, like, strict=False)
    np.testing.assert_array_equal(loose["params"]["a"]["kernel"], np.ones((4, 3)))
    np.testing.assert_array_equal(loose["params"]["b"]["kernel"], np.zeros((4, 3)))


def test_wrong_recurrent_kind_is_a_shape_error():
    with jax.enable_x64(True):
        module, _, x, kwargs = _imported("lstm")
        like = jax.eval_shape(lambda: module.init(jax.random.key(0), x, **kwargs))
    with pytest.raises(ValueError, match=r"'weight_ih_l0' has shape \(4, 3\) .* expects \(16, 3\)"):
        load_torch_state_dict(_sd("rnn"), {"": ("lstm", "")}, like)
