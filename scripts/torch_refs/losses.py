"""PyTorch reference data for dlcore's losses and local response normalization.

Everything is float64; inputs come from ``np.random.default_rng(SEED)``. Keys of
``tests/references/torch_losses.npz`` (``<case>`` names one loss with one setting):

- inputs: ``logits`` [B, K], ``labels`` [B] (class ids as floats), ``soft`` [B, K] (rows of
  probabilities), ``bce_logits``/``bce_targets`` [B, L], ``pred``/``target`` [B, D],
  ``emb_a``/``emb_b`` [B, D], ``pair_sign`` [B] (+1 / -1), ``anchor``/``positive``/
  ``negative`` [B, D], ``lrn_x`` [N, C, H, W] (PyTorch's channels-first layout);
- ``<case>_param``: the loss's setting (margin, delta, beta, eps or label smoothing);
- ``<case>_none``: PyTorch's ``reduction="none"`` output ([B], or [B, D] for elementwise
  losses);
- ``<case>_mean``: the ``reduction="mean"`` scalar, and ``<case>_grad_<input>`` its
  gradient with respect to each differentiable input;
- LRN: ``lrn_n<size>_<convention>_out`` and ``..._grad`` (gradient of sum(out * lrn_cot)),
  where ``divided_by_size`` is ``nn.LocalResponseNorm(size, alpha=LRN_ALPHA)`` and
  ``absolute`` is ``nn.LocalResponseNorm(size, alpha=LRN_ALPHA * size)`` (dlcore's absolute
  coefficient LRN_ALPHA); ``lrn_cot`` is the cotangent.

Run: ``python -m scripts.torch_refs losses`` (needs torch).
"""

import numpy as np
import torch
from torch import nn

SEED = 15
B, K, L, D = 5, 4, 3, 3
LRN_SIZES = (2, 3, 4, 5)
LRN_ALPHA, LRN_K, LRN_BETA = 0.05, 1.5, 0.75
MARGINS = (1.0, 0.5)
DELTAS = (1.0, 0.5)
SMOOTHINGS = (0.0, 0.1, 0.25)
COSINE_MARGINS = (0.0, 0.3)
TRIPLET_MARGINS = (1.0, 0.3)


def _t(a: np.ndarray, grad: bool = True) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _record(out: dict, case: str, param: float, loss, inputs: dict) -> None:
    """Stores ``case``'s none/mean outputs of ``loss(reduction, *inputs)`` and the mean's
    gradients w.r.t. ``inputs``."""
    tensors = {name: _t(value) for name, value in inputs.items()}
    args = list(tensors.values())
    out[f"{case}_param"] = np.float64(param)
    out[f"{case}_none"] = loss("none", *args).detach().numpy()
    mean = loss("mean", *args)
    mean.backward()
    out[f"{case}_mean"] = mean.detach().numpy()
    for name, tensor in tensors.items():
        out[f"{case}_grad_{name}"] = tensor.grad.numpy()


def _inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    soft = rng.random((B, K))
    anchor = rng.normal(size=(B, D))
    return {
        "logits": 2.0 * rng.normal(size=(B, K)),
        "labels": rng.integers(0, K, size=B).astype(np.float64),
        "soft": soft / soft.sum(axis=1, keepdims=True),
        "bce_logits": 2.0 * rng.normal(size=(B, L)),
        "bce_targets": rng.random((B, L)),
        # residuals spread over [-3, 3]: both sides of every delta and beta
        "pred": 1.5 * rng.normal(size=(B, D)),
        "target": 1.5 * rng.normal(size=(B, D)),
        "emb_a": rng.normal(size=(B, D)),
        "emb_b": rng.normal(size=(B, D)),
        "pair_sign": np.array([1.0, -1.0, 1.0, -1.0, -1.0]),
        "anchor": anchor,
        "positive": anchor + 0.8 * rng.normal(size=(B, D)),
        "negative": anchor + 1.2 * rng.normal(size=(B, D)),
        "lrn_x": 3.0 * rng.normal(size=(2, 7, 2, 3)),
        "lrn_cot": rng.normal(size=(2, 7, 2, 3)),
    }


def _classification(out: dict, x: dict) -> None:
    labels = torch.tensor(x["labels"], dtype=torch.long)
    for i, eps in enumerate(SMOOTHINGS):
        for target_kind, target in (("ids", labels), ("soft", torch.tensor(x["soft"]))):

            def ce(reduction, logits, eps=eps, target=target):
                return nn.CrossEntropyLoss(reduction=reduction, label_smoothing=eps)(logits, target)

            _record(out, f"ce_{target_kind}_s{i}", eps, ce, {"logits": x["logits"]})
    for i, margin in enumerate(MARGINS):

        def hinge(reduction, logits, margin=margin):
            return nn.MultiMarginLoss(margin=margin, reduction=reduction)(logits, labels)

        _record(out, f"multimargin_m{i}", margin, hinge, {"logits": x["logits"]})

    def bce(reduction, logits):
        return nn.BCEWithLogitsLoss(reduction=reduction)(logits, torch.tensor(x["bce_targets"]))

    _record(out, "bce", 0.0, bce, {"bce_logits": x["bce_logits"]})


def _regression(out: dict, x: dict) -> None:
    target = torch.tensor(x["target"])
    for i, delta in enumerate(DELTAS):

        def huber(reduction, pred, delta=delta):
            return nn.HuberLoss(reduction=reduction, delta=delta)(pred, target)

        def smooth_l1(reduction, pred, beta=delta):
            return nn.SmoothL1Loss(reduction=reduction, beta=beta)(pred, target)

        _record(out, f"huber_d{i}", delta, huber, {"pred": x["pred"]})
        _record(out, f"smooth_l1_d{i}", delta, smooth_l1, {"pred": x["pred"]})


def _metric_learning(out: dict, x: dict) -> None:
    sign = torch.tensor(x["pair_sign"])
    for i, margin in enumerate(COSINE_MARGINS):

        def cosine(reduction, a, b, margin=margin):
            return nn.CosineEmbeddingLoss(margin=margin, reduction=reduction)(a, b, sign)

        pair = {"emb_a": x["emb_a"], "emb_b": x["emb_b"]}
        _record(out, f"cosine_m{i}", margin, cosine, pair)
    for i, margin in enumerate(TRIPLET_MARGINS):

        def triplet(reduction, a, p, n, margin=margin):
            return nn.TripletMarginLoss(margin=margin, eps=1e-6, reduction=reduction)(a, p, n)

        triple = {k: x[k] for k in ("anchor", "positive", "negative")}
        _record(out, f"triplet_m{i}", margin, triplet, triple)


def _lrn(out: dict, x: dict) -> None:
    cot = torch.tensor(x["lrn_cot"])
    for size in LRN_SIZES:
        for convention, alpha in (
            ("divided_by_size", LRN_ALPHA),
            ("absolute", LRN_ALPHA * size),
        ):
            a = _t(x["lrn_x"])
            y = nn.LocalResponseNorm(size, alpha=alpha, beta=LRN_BETA, k=LRN_K)(a)
            torch.sum(y * cot).backward()
            out[f"lrn_n{size}_{convention}_out"] = y.detach().numpy()
            out[f"lrn_n{size}_{convention}_grad"] = a.grad.numpy()


def make() -> dict[str, np.ndarray]:
    """Every reference array by key (see the module docstring)."""
    torch.set_default_dtype(torch.float64)
    x = _inputs(np.random.default_rng(SEED))
    out = dict(x)
    out["lrn_constants"] = np.array([LRN_ALPHA, LRN_K, LRN_BETA])
    _classification(out, x)
    _regression(out, x)
    _metric_learning(out, x)
    _lrn(out, x)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}
