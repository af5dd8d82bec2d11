"""Semantic segmentation as a task: a class for every pixel.

A model maps images ``x [B, H, W, C]`` to logits ``[B, H, W, K]``; the per-pixel map
``seg [B, H, W]`` holds class ids (0 = background). The loss is the softmax cross-entropy
averaged over the pixels of each image. Metrics are functions of sums over a whole split,
never means of per-batch ratios:

    pixel_accuracy = sum_pixels [argmax = seg] / pixels
    IoU_k = TP_k / (TP_k + FP_k + FN_k)       (TP, FP, FN summed over every pixel of the split)
    mean_iou = mean of IoU_k over the classes present in the predictions or the truth
    foreground_iou = the same mean without class 0 (the background)

Averaging per-batch IoUs instead would weight a batch where a class covers 3 pixels as much
as one where it covers 3000 (a test constructs such a case).
"""

import dataclasses
import pathlib
from typing import ClassVar, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import Field

from dlcore.data.augment import Augment, AugmentSection, identity
from dlcore.data.dataset import Dataset
from dlcore.data.needs import Need
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults, means
from dlcore.tasks.base import apply_model, init_state
from dlcore.tasks.context import BuildContext, TaskSection

IMAGES = Need("x", ("features",), "images [H, W, C]", (3,))
MAPS = Need("seg", ("labels",), "a class id per pixel [H, W]", (2,))
_SHOWN = 6  # test images drawn by report()
_REPORT_BATCH = 256  # test images per prediction call in report()


def confusion_sums(logits_BxHxWxK, seg_BxHxW, mask_B) -> dict[str, jax.Array]:
    """Per-class ``tp``, ``fp``, ``fn`` ``[K]`` and the correct-pixel count of one batch,
    with padded examples (``mask_B = 0``) left out."""
    k = logits_BxHxWxK.shape[-1]
    weight = mask_B[:, None, None]
    pred = jax.nn.one_hot(jnp.argmax(logits_BxHxWxK, axis=-1), k) * weight[..., None]
    true = jax.nn.one_hot(seg_BxHxW, k) * weight[..., None]
    tp = jnp.sum(pred * true, axis=(0, 1, 2))
    return {
        "tp": tp,
        "fp": jnp.sum(pred, axis=(0, 1, 2)) - tp,
        "fn": jnp.sum(true, axis=(0, 1, 2)) - tp,
        "correct": jnp.sum(tp),
    }


def class_iou(tp, fp, fn) -> tuple[np.ndarray, np.ndarray]:
    """Per-class IoU_k = TP_k / (TP_k + FP_k + FN_k) (0 where the union is empty) and which
    classes occur in the predictions or the truth (union > 0)."""
    tp, fp, fn = (np.asarray(a, np.float64) for a in (tp, fp, fn))
    union = tp + fp + fn
    present = union > 0
    return np.where(present, tp / np.maximum(union, 1e-12), 0.0), present


def iou_metrics(tp, fp, fn) -> dict[str, float]:
    """Mean IoU over classes that occur (in predictions or truth), with and without class 0.

    Example:
      >>> tp, fp, fn = np.array([3.0, 1, 0]), np.array([1.0, 0, 0]), np.array([0.0, 1, 0])
      >>> iou_metrics(tp, fp, fn)  # class 2 never occurs; IoU_0 = 3/4, IoU_1 = 1/2
      {'mean_iou': 0.625, 'foreground_iou': 0.5}
    """
    iou, present = class_iou(tp, fp, fn)

    def mean(keep):
        return float(iou[keep].mean()) if keep.any() else 0.0

    foreground = present.copy()
    foreground[0] = False
    return {"mean_iou": mean(present), "foreground_iou": mean(foreground)}


@dataclasses.dataclass(frozen=True)
class SegmentationTask(TaskDefaults):
    """Fits ``model(x) -> [B, H, W, K]`` logits to per-pixel classes ``seg``.

    Attributes:
      model: a Flax module called as ``model(x, train=bool)``.
      optimizer: the optax chain.
      augment: ``(key, x, seg) -> (x, seg)`` on training batches only (the spatial
        transforms move ``seg`` with the image).
    """

    model: nn.Module
    optimizer: optax.GradientTransformation
    augment: Augment = identity
    metric_modes: ClassVar[dict[str, Mode]] = {
        "loss": "min",
        "pixel_accuracy": "max",
        "mean_iou": "max",
        "foreground_iou": "max",
    }
    default_metric: ClassVar[str] = "mean_iou"

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        return init_state(self.model, self.optimizer, rng, batch["x"])

    def _sums(self, logits, seg, mask, per_example_loss) -> Metrics:
        pixels = seg.shape[1] * seg.shape[2]
        sums = confusion_sums(logits, seg, mask)
        return {
            "loss": jnp.sum(per_example_loss * mask) * pixels,
            "count": jnp.sum(mask) * pixels,
            "pixel_accuracy": sums.pop("correct"),
            **sums,
        }

    @staticmethod
    def _loss(logits, seg) -> jax.Array:
        """Cross-entropy averaged over each image's pixels: ``[B]``."""
        pixel = -jnp.take_along_axis(jax.nn.log_softmax(logits), seg[..., None], axis=-1)
        return jnp.mean(pixel[..., 0], axis=(1, 2))

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        x, seg = self.augment(state.step_key("augment"), batch["x"], batch["seg"])
        mask = batch.get("mask", jnp.ones(seg.shape[0], jnp.float32))

        def objective(params):
            key = state.step_key("dropout")
            logits, model_state = apply_model(self.model, params, state.model_state, x, key)
            per_example = self._loss(logits, seg)
            return jnp.sum(per_example * mask) / jnp.sum(mask), (logits, model_state, per_example)

        grads, (logits, model_state, per_example) = jax.grad(objective, has_aux=True)(state.params)
        new_state = apply_gradients(state, self.optimizer, grads)
        new_state = new_state.replace(step=state.step + 1, model_state=model_state)
        return new_state, self._sums(logits, seg, mask, per_example)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        seg = batch["seg"]
        mask = batch.get("mask", jnp.ones(seg.shape[0], jnp.float32))
        logits = self._logits(state, batch["x"])
        return self._sums(logits, seg, mask, self._loss(logits, seg))

    def _logits(self, state: TrainState, x: jax.Array) -> jax.Array:
        """Evaluation-mode logits ``[B, H, W, K]`` (batch norm uses its running averages)."""
        return apply_model(self.model, state.params, state.model_state, x, None)[0]

    def summarize(self, metric_sums: dict, training_window: bool) -> dict:
        del training_window  # every metric is a ratio of totals
        counts = {k: metric_sums[k] for k in ("loss", "pixel_accuracy", "count")}
        return {
            **means(counts),
            **iou_metrics(metric_sums["tp"], metric_sums["fp"], metric_sums["fn"]),
        }

    def report(self, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
        """Draws ``segmentation.png`` (a few test images, their true and predicted maps) and
        returns the IoU of every class on the whole test split, from its totals, as
        ``test_iou_<name>`` (names from ``info["classes"]``, ``background`` for class 0;
        classes that occur neither in the predictions nor in the truth are left out)."""
        x, seg = np.asarray(data.test.x), np.asarray(data.test["seg"])
        predict = jax.jit(lambda s, x: jnp.argmax(self._logits(s, x), axis=-1))  # [B, H, W]
        pred = np.concatenate(
            [
                np.asarray(predict(state, x[i : i + _REPORT_BATCH]))
                for i in range(0, len(x), _REPORT_BATCH)
            ]
        )
        k = int(data.info.get("seg_classes", max(pred.max(), seg.max()) + 1))
        names = ["background", *data.info.get("classes", range(1, k))]
        plot_segmentation(
            x[:_SHOWN], seg[:_SHOWN], pred[:_SHOWN], names, directory / "segmentation.png"
        )
        tp = np.bincount(seg[pred == seg], minlength=k)
        fp = np.bincount(pred.ravel(), minlength=k) - tp
        fn = np.bincount(seg.ravel(), minlength=k) - tp
        iou, present = class_iou(tp, fp, fn)
        return {f"test_iou_{names[c]}": float(iou[c]) for c in range(k) if present[c]}


def plot_segmentation(x_NxHxWxC, seg_NxHxW, pred_NxHxW, names: list, path: pathlib.Path) -> None:
    """Three rows: the images (rescaled to [0, 1] together), the true maps and the
    predicted maps, class c in colour c of a fixed palette (background black), with a key."""
    # Imported here: matplotlib is slow to import and only the end of a run needs it.
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    k, n = len(names), len(x_NxHxWxC)
    palette = ["black", *(colormaps["tab10"](i % 10) for i in range(k - 1))]
    cmap = ListedColormap(palette)
    shown = np.asarray(x_NxHxWxC, np.float64)
    shown = (shown - shown.min()) / max(np.ptp(shown), 1e-12)
    fig = Figure(figsize=(1.6 * n, 5.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, n, squeeze=False)
    rows = (("input", shown), ("truth", seg_NxHxW), ("predicted", pred_NxHxW))
    for i, (title, images) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            if i == 0:
                ax.imshow(images[j].squeeze(), cmap="gray" if images[j].shape[-1] == 1 else None)
            else:
                ax.imshow(images[j], cmap=cmap, vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
            ax.set_axis_off()
            if j == 0:
                ax.set_title(title, fontsize=8, loc="left")
    handles = [Patch(color=c, label=str(name)) for c, name in zip(palette, names, strict=True)]
    fig.legend(handles=handles, loc="lower center", ncol=min(k, 5), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)


class SegmentationConfig(TaskSection):
    """A class per pixel: per-pixel cross-entropy; pixel accuracy and IoU from split totals."""

    name: Literal["segmentation"] = "segmentation"
    augment: AugmentSection = Field(
        default_factory=AugmentSection, description="training-time augmentation (moves seg too)"
    )

    def needs(self) -> tuple[Need, ...]:
        return (IMAGES, MAPS)

    def build(self, ctx: BuildContext) -> SegmentationTask:
        self.augment.check(ctx.data, seg="seg")
        classes = ctx.data.info.get("seg_classes")
        if classes is None:
            raise ValueError(
                f"{ctx.data.name} does not say how many classes its seg maps hold "
                "(info['seg_classes'])"
            )
        model = ctx.model(classes)
        return SegmentationTask(model, ctx.optimizer(), self.augment.make())
