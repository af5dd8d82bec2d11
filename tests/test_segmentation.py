"""U-Net and the segmentation task: IoU from split totals, skips, sizes and errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from dlcore.data.dataset import Dataset, Split
from dlcore.engine.compiled import CompiledTask, eval_chunks, sum_metrics
from dlcore.engine.loop import evaluate
from dlcore.models.unet import UNet, UNetConfig
from dlcore.tasks.base import init_state
from dlcore.tasks.segmentation import SegmentationTask, confusion_sums, iou_metrics
from tests.helpers import run_cli, run_main


def one_hot_logits(pred_BxHxW, k):
    return jax.nn.one_hot(jnp.asarray(pred_BxHxW), k) * 10.0


def numpy_iou(pred, true, k):
    """IoU per class written out: |pred = c and true = c| / |pred = c or true = c|."""
    ious = {}
    for c in range(k):
        union = np.sum((pred == c) | (true == c))
        if union:
            ious[c] = np.sum((pred == c) & (true == c)) / union
    return ious


def test_confusion_sums_and_iou_match_numpy_with_an_absent_class():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, (4, 5, 5))  # class 3 appears nowhere
    pred = np.where(rng.random((4, 5, 5)) < 0.7, true, rng.integers(0, 3, (4, 5, 5)))
    sums = confusion_sums(one_hot_logits(pred, 4), jnp.asarray(true), jnp.ones(4))
    metrics = iou_metrics(sums["tp"], sums["fp"], sums["fn"])
    ious = numpy_iou(pred, true, 4)
    assert 3 not in ious
    assert metrics["mean_iou"] == pytest.approx(np.mean(list(ious.values())), abs=1e-12)
    assert metrics["foreground_iou"] == pytest.approx(np.mean([ious[1], ious[2]]), abs=1e-12)
    assert float(sums["correct"]) == np.sum(pred == true)


def test_padded_examples_do_not_count():
    true = np.zeros((2, 3, 3), np.int64)
    pred = np.stack([true[0], np.ones((3, 3), np.int64)])  # the padded row is all wrong
    sums = confusion_sums(one_hot_logits(pred, 2), jnp.asarray(true), jnp.array([1.0, 0.0]))
    assert iou_metrics(sums["tp"], sums["fp"], sums["fn"])["mean_iou"] == 1.0


def test_iou_from_split_totals_is_not_the_mean_of_batch_ious():
    """Batch 1: class 1 covers 1 pixel and is missed; batch 2: it covers 8 and all are found.
    Totals give IoU_1 = 8/9; averaging the two batches' IoU_1 would give 1/2."""
    true1 = np.zeros((1, 3, 3), np.int64)
    true1[0, 0, 0] = 1
    pred1 = np.zeros_like(true1)
    true2 = np.ones((1, 3, 3), np.int64)
    true2[0, 1, 1] = 0
    pred2 = true2.copy()
    task = SegmentationTask(None, optax.sgd(0.1))
    batches = [
        {**confusion_sums(one_hot_logits(p, 2), jnp.asarray(t), jnp.ones(1)), "count": 9.0}
        for p, t in ((pred1, true1), (pred2, true2))
    ]
    for b in batches:
        b["pixel_accuracy"], b["loss"] = b.pop("correct"), 0.0
    totals = task.summarize(sum_metrics(batches), training_window=False)
    assert totals["foreground_iou"] == pytest.approx(8 / 9)
    per_batch = [task.summarize(sum_metrics([b]), False)["foreground_iou"] for b in batches]
    assert np.mean(per_batch) == pytest.approx(0.5)
    assert totals["pixel_accuracy"] == pytest.approx(17 / 18)


@pytest.fixture(scope="module")
def unet():
    model = UNet(out_features=3, widths=(2, 4), batch_norm=False)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    return model, model.init(jax.random.key(1), x, train=False), x


def test_unet_gives_per_pixel_logits_and_uses_its_skip_connections(unet):
    model, variables, x = unet
    y = model.apply(variables, x, train=False)
    assert y.shape == (2, 8, 8, 3)
    # Zero the upsampling path: the output still depends on the input through the skip.
    params = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.zeros_like(v) if "up1" in jax.tree_util.keystr(path) else v,
        variables["params"],
    )

    def out(inp):
        return jnp.sum(model.apply({"params": params}, inp, train=False) ** 2)

    grad = jax.grad(out)(x)
    assert float(jnp.abs(grad).sum()) > 0
    # And the bottom level's weights get no gradient then (only the skip carries signal).
    g = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x, train=False) ** 2))(params)
    assert float(jnp.abs(g["down2"]["conv1"]["conv"]["kernel"]).sum()) == 0.0
    assert float(jnp.abs(g["down1"]["conv1"]["conv"]["kernel"]).sum()) > 0.0


def test_loss_is_the_pixel_mean_of_cross_entropy_with_its_gradient():
    """L_b = -(1 / HW) sum_ij log softmax(z_bij)[seg_bij], against NumPy in float64."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        logits = rng.normal(size=(2, 3, 4, 5))
        seg = rng.integers(0, 5, (2, 3, 4))
        log_p = logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
        picked = np.take_along_axis(log_p, seg[..., None], axis=-1)[..., 0]
        expected = -picked.mean(axis=(1, 2))
        loss = SegmentationTask._loss(jnp.asarray(logits), jnp.asarray(seg))
        np.testing.assert_allclose(np.asarray(loss), expected, rtol=1e-12)
        # dL_b/dz_bijk = (softmax(z_bij)_k - [k = seg_bij]) / HW
        grad = jax.grad(lambda z: SegmentationTask._loss(z, jnp.asarray(seg)).sum())(logits)
        expected_grad = (np.exp(log_p) - np.eye(5)[seg]) / 12
        np.testing.assert_allclose(np.asarray(grad), expected_grad, rtol=1e-10, atol=1e-14)
        check_grads(lambda z: SegmentationTask._loss(z, jnp.asarray(seg)), (logits,), order=1)


def test_evaluation_and_report_use_totals_over_padded_batches(unet, tmp_path):
    """Through the loop's ``evaluate`` (7 test images in batches of 3, the last padded) and
    the run's report: every figure equals NumPy on the model's predictions for the split."""
    model, variables, _ = unet
    x = np.asarray(jax.random.normal(jax.random.key(2), (7, 8, 8, 3)), np.float32)
    state = init_state(model, optax.sgd(0.1), jax.random.key(1), jnp.asarray(x))
    logits = np.asarray(model.apply({"params": state.params}, x, train=False), np.float64)
    pred = logits.argmax(-1)
    rng = np.random.default_rng(3)
    seg = np.where(rng.random(pred.shape) < 0.6, pred, rng.integers(0, 3, pred.shape))
    seg = seg.astype(np.int32)
    assert len(np.unique(pred)) > 1 and set(np.unique(seg)) == {0, 1, 2}
    ious = numpy_iou(pred, seg, 3)
    log_p = logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
    ce = -np.take_along_axis(log_p, seg[..., None], axis=-1).mean()

    task = SegmentationTask(model, optax.sgd(0.1))
    got = evaluate(CompiledTask(task), state, eval_chunks({"x": x, "seg": seg}, 3))
    assert got["mean_iou"] == pytest.approx(np.mean(list(ious.values())), abs=1e-9)
    assert got["foreground_iou"] == pytest.approx(np.mean([ious[1], ious[2]]), abs=1e-9)
    assert got["pixel_accuracy"] == pytest.approx(np.mean(pred == seg), abs=1e-9)
    assert got["loss"] == pytest.approx(ce, rel=1e-5)

    split = Split(x=x, seg=seg)
    data = Dataset(
        "tiny", split, split, split, None, info={"seg_classes": 3, "classes": ["a", "b"]}
    )
    report = task.report(state, data, tmp_path)
    expected = {"test_iou_background": ious[0], "test_iou_a": ious[1], "test_iou_b": ious[2]}
    assert report == pytest.approx(expected, abs=1e-12)
    assert (tmp_path / "segmentation.png").stat().st_size > 0


def test_unet_image_side_must_halve_evenly():
    with pytest.raises(ValueError, match="multiple of 4"):
        UNet(out_features=2, widths=(2, 4, 8)).init(
            jax.random.key(0), jnp.ones((1, 10, 10, 3)), train=False
        )
    assert UNetConfig(widths=[2, 4]).make(3).widths == (2, 4)


TINY = """
name = "seg"
[data]
name = "{data}"
{extra}
[model]
name = "unet"
widths = [2, 4]
[task]
name = "segmentation"
[train]
epochs = 1
batch_size = 8
"""


@pytest.mark.parametrize(
    ("data", "extra", "field", "phrase"),
    [
        ("digits", 'layout = "image"', "task.name", "needs a field 'seg'"),
        ("shapes", "n_samples = 60\nimage_size = 15\nmin_size = 0.25", "model", "multiple of 2"),
    ],
)
def test_misfits_are_one_line_config_errors(tmp_path, data, extra, field, phrase):
    path = tmp_path / "seg.toml"
    path.write_text(TINY.format(data=data, extra=extra))
    result = run_main("run", str(path), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and phrase in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


def test_a_tiny_run_reports_class_ious_that_average_to_its_test_mean_iou(tmp_path):
    """The real CLI end to end: the report's per-class test IoUs (from the whole split) and
    the loop's test mean IoU (from summed batch counts) are the same numbers."""
    extra = "n_samples = 60\nimage_size = 12\nmin_size = 0.25\nclasses = ['circle', 'cross']"
    path = tmp_path / "seg.toml"
    path.write_text(TINY.format(data="shapes", extra=extra))
    result = run_cli("run", str(path), "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    report, test = summary["report"], summary["final"]["test"]
    assert set(report) <= {"test_iou_background", "test_iou_circle", "test_iou_cross"}
    assert "test_iou_background" in report
    assert test["mean_iou"] == pytest.approx(np.mean(list(report.values())), abs=1e-6)
    assert (tmp_path / "run" / "segmentation.png").stat().st_size > 0
