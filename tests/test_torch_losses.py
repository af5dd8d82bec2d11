"""dlcore's losses and LRN with their PyTorch-matching options against PyTorch's own numbers.

The references (``tests/references/torch_losses.npz``, written by ``python -m
scripts.torch_refs losses``; keys documented in ``scripts/torch_refs/losses.py``) hold
PyTorch's per-example outputs, batch means and the means' input gradients, in float64. Here
dlcore computes the same in float64 and must agree to 1e-10; torch is not imported.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlcore.losses as L
from dlcore.layers import local_response_norm
from tests.helpers import REPO

REF = dict(np.load(REPO / "tests" / "references" / "torch_losses.npz"))
TOL = 1e-10


def _labels():
    return REF["labels"].astype(np.int32)


def _param(case):
    return float(REF[f"{case}_param"])


# case -> (dlcore per-example loss of the differentiable inputs, their reference names);
# fixed arguments stay NumPy float64 until the loss runs inside enable_x64.
# Elementwise PyTorch losses ("none" is [B, D]) use element_reduction="mean", whose
# per-example value is the row mean of PyTorch's elements.
def _cases():
    cases = {}
    for case in [k[: -len("_param")] for k in REF if k.endswith("_param")]:
        p = _param(case)
        if case.startswith("ce_ids"):
            fn = functools.partial(L.softmax_cross_entropy, labels=_labels(), label_smoothing=p)
            cases[case] = (fn, ("logits",))
        elif case.startswith("ce_soft"):
            fn = functools.partial(L.softmax_cross_entropy, labels=REF["soft"], label_smoothing=p)
            cases[case] = (fn, ("logits",))
        elif case.startswith("multimargin"):
            fn = functools.partial(
                L.multiclass_hinge,
                labels_B=_labels(),
                margin=p,
                class_reduction="mean",
            )
            cases[case] = (fn, ("logits",))
        elif case == "bce":
            fn = functools.partial(
                L.binary_cross_entropy,
                labels_B=REF["bce_targets"],
                element_reduction="mean",
            )
            cases[case] = (fn, ("bce_logits",))
        elif case.startswith(("huber", "smooth_l1")):
            loss, option = (L.huber_loss, "delta") if case[0] == "h" else (L.smooth_l1_loss, "beta")
            fn = functools.partial(
                loss,
                target_BxD=REF["target"],
                element_reduction="mean",
                **{option: p},
            )
            cases[case] = (fn, ("pred",))
        elif case.startswith("cosine"):
            sign = REF["pair_sign"]
            cases[case] = (
                lambda a, b, m=p, sign=sign: L.cosine_embedding_loss(a, b, sign, margin=m),
                ("emb_a", "emb_b"),
            )
        elif case.startswith("triplet"):
            fn = functools.partial(L.triplet_loss, margin=p, distance="euclidean", eps=1e-6)
            cases[case] = (fn, ("anchor", "positive", "negative"))
        else:
            raise AssertionError(f"no dlcore counterpart for reference case {case}")
    return cases


CASES = _cases()


def test_references_cover_every_option():
    prefixes = {"ce_ids", "ce_soft", "multimargin", "bce", "huber", "smooth_l1", "cosine"}
    assert {c.rsplit("_", 1)[0] if c != "bce" else c for c in CASES} >= prefixes | {"triplet"}
    smoothings = {_param(c) for c in CASES if c.startswith("ce_ids")}
    assert 0.0 in smoothings and len(smoothings) >= 3


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_matches_pytorch(case):
    fn, names = CASES[case]
    with jax.enable_x64(True):
        inputs = [jnp.asarray(REF[n], jnp.float64) for n in names]

        def mean(*xs):
            return L.reduce_loss(fn(*xs))

        per_example = np.asarray(fn(*inputs))
        value, grads = jax.value_and_grad(mean, argnums=tuple(range(len(names))))(*inputs)
    assert per_example.dtype == np.float64
    torch_none = REF[f"{case}_none"]
    if torch_none.ndim == 2:  # elementwise: dlcore's per-example "mean" is the row mean
        torch_none = torch_none.mean(axis=1)
    np.testing.assert_allclose(per_example, torch_none, rtol=0, atol=TOL)
    np.testing.assert_allclose(float(value), REF[f"{case}_mean"], rtol=0, atol=TOL)
    for name, g in zip(names, grads, strict=True):
        np.testing.assert_allclose(np.asarray(g), REF[f"{case}_grad_{name}"], rtol=0, atol=TOL)


LRN_CASES = sorted({k.rsplit("_", 1)[0] for k in REF if k.startswith("lrn_n")})


def test_lrn_references_cover_odd_and_even_sizes_and_both_conventions():
    sizes = {int(c.split("_")[1][1:]) for c in LRN_CASES}
    assert {s % 2 for s in sizes} == {0, 1}
    assert {c.split("_", 2)[2] for c in LRN_CASES} == {"absolute", "divided_by_size"}


@pytest.mark.parametrize("case", LRN_CASES)
def test_lrn_matches_pytorch(case):
    size = int(case.split("_")[1][1:])
    convention = case.split("_", 2)[2]
    alpha, k, beta = REF["lrn_constants"]
    lrn = functools.partial(
        local_response_norm,
        size=size,
        k=float(k),
        alpha=float(alpha),
        beta=float(beta),
        alpha_convention=convention,
        even_size="more_before" if size % 2 == 0 else "refuse",
    )
    with jax.enable_x64(True):
        # PyTorch is channels-first [N, C, H, W]; dlcore normalizes the last axis.
        x = jnp.asarray(REF["lrn_x"].transpose(0, 2, 3, 1), jnp.float64)
        cot = jnp.asarray(REF["lrn_cot"].transpose(0, 2, 3, 1), jnp.float64)
        out, vjp = jax.vjp(lrn, x)
        (grad,) = vjp(cot)
    to_torch = (0, 3, 1, 2)
    np.testing.assert_allclose(np.transpose(out, to_torch), REF[f"{case}_out"], rtol=0, atol=TOL)
    np.testing.assert_allclose(np.transpose(grad, to_torch), REF[f"{case}_grad"], rtol=0, atol=TOL)
