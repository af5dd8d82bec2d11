"""dlcore MultiHeadAttention against PyTorch's nn.MultiheadAttention (committed references,
``scripts/torch_refs/attention.py``), through ``dlcore.interop``'s ``multihead_attention`` kind."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.interop import load_torch_state_dict, torch_state_dict
from dlcore.layers import MultiHeadAttention

REFS = np.load(pathlib.Path(__file__).parent / "references" / "torch_attention.npz")
CASES = ("self_padding", "self_causal", "self_float_mask", "cross", "no_bias")
MAPPING = {"": ("multihead_attention", "")}


def _ref(case: str) -> dict[str, np.ndarray]:
    head = f"{case}/"
    return {k[len(head) :]: REFS[k] for k in REFS.files if k.startswith(head)}


def _state_dict(ref: dict) -> dict[str, np.ndarray]:
    return {k[3:]: v for k, v in ref.items() if k.startswith("sd/")}


def _layer(ref: dict) -> MultiHeadAttention:
    return MultiHeadAttention(
        num_heads=int(ref["num_heads"]),
        use_bias="sd/in_proj_bias" in ref,
        average_weights=bool(ref["average"]),
        param_dtype=jnp.float64,
    )


def _like(layer, ref):
    return jax.eval_shape(
        lambda: layer.init(jax.random.key(0), ref["q"], ref["k"], ref["v"], train=False)
    )


def _masks(ref: dict) -> dict:
    """PyTorch's masks in dlcore's convention: boolean True = attend, floats additive."""
    masks = {}
    if "key_padding_mask" in ref:
        masks["key_mask_BxTk"] = jnp.asarray(~ref["key_padding_mask"])
    if "attn_mask" in ref:
        m = ref["attn_mask"]
        if m.dtype == bool:
            masks["attn_mask"] = jnp.asarray(~m)
        else:
            masks["attn_bias"] = jnp.asarray(m)
    return masks


@pytest.mark.parametrize("case", CASES)
def test_imported_attention_matches_pytorch(case):
    ref = _ref(case)
    layer = _layer(ref)
    with jax.enable_x64(True):
        variables = load_torch_state_dict(_state_dict(ref), MAPPING, _like(layer, ref))
        masks = _masks(ref)

        def f(q, k, v):
            return layer.apply(variables, q, k, v, train=False, **masks)

        (y, w), vjp = jax.vjp(jax.jit(f), *(jnp.asarray(ref[n]) for n in "qkv"))
        dq, dk, dv = vjp((jnp.asarray(ref["gy"]), jnp.asarray(ref["gw"])))
        assert y.dtype == jnp.float64
        for name, got in (("y", y), ("w", w), ("dq", dq), ("dk", dk), ("dv", dv)):
            np.testing.assert_allclose(got, ref[name], rtol=0, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("case", ["self_padding", "cross", "no_bias"])
def test_export_round_trips(case, tmp_path):
    from dlcore.interop import load_safetensors, save_safetensors

    ref = _ref(case)
    sd = _state_dict(ref)
    with jax.enable_x64(True):
        like = _like(_layer(ref), ref)
    variables = load_torch_state_dict(sd, MAPPING, like)
    save_safetensors(torch_state_dict(variables, MAPPING), tmp_path / "mha.safetensors")
    back = load_safetensors(tmp_path / "mha.safetensors")
    assert sorted(back) == sorted(sd)  # packed stays packed, separate stays separate
    for k, v in sd.items():
        np.testing.assert_array_equal(back[k], v, err_msg=k)
    again = load_torch_state_dict(back, MAPPING, variables)
    jax.tree.map(np.testing.assert_array_equal, again, variables)


def test_import_errors_name_the_key_and_both_shapes():
    cross, packed = _ref("cross"), _ref("self_padding")
    sd = _state_dict(cross)
    sd["k_proj_weight"] = sd["k_proj_weight"][:, :4]
    with jax.enable_x64(True):
        like_cross, like_packed = _like(_layer(cross), cross), _like(_layer(packed), packed)
    with pytest.raises(ValueError) as err:
        load_torch_state_dict(sd, MAPPING, like_cross)
    msg = str(err.value)
    assert "'k_proj_weight'" in msg and "(6, 4)" in msg and "(6, 5)" in msg and "\n" not in msg
    # a packed (kdim = vdim = E) state dict into a layer with kdim = 5: the layouts differ
    with pytest.raises(
        ValueError,
        match=r"missing PyTorch key\(s\) 'k_proj_weight', 'q_proj_weight', 'v_proj_weight'",
    ):
        load_torch_state_dict(_state_dict(packed), MAPPING, like_cross)
    sd = {**_state_dict(packed), "bias_k": np.zeros((1, 1, 6))}  # add_bias_kv: not supported
    with pytest.raises(ValueError, match="unexpected PyTorch key.*'bias_k'"):
        load_torch_state_dict(sd, MAPPING, like_packed)
