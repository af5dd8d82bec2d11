"""The one generic training loop: every task trains here.

    config -> data -> task (model, loss, optax chain) -> compiled step -> metrics/checkpoints

The host loop feeds batches to one compiled ``train_step(state, batch) -> (state, metrics)``
(or, in ``scan`` mode, one compiled call per epoch), donates the state, pulls metrics to the
host only when it logs, evaluates at epoch ends, and checkpoints. Everything that decides
what happens next (step, data position, the not-yet-logged metrics, the best validation
value) is in the checkpoint, so a resumed run continues bit-identically.
"""

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from dlcore.checkpoint import CheckpointStore
from dlcore.config import TrainConfig
from dlcore.data import BatchOrder, Dataset
from dlcore.engine.compiled import CompiledTask, eval_chunks, sum_metrics
from dlcore.engine.selection import BestTracker
from dlcore.engine.signals import NEVER_STOP
from dlcore.run_dir import RunDir
from dlcore.state import TrainState
from dlcore.tasks.base import Task, means


class Reporter(Protocol):
    """Where progress goes (a progress bar, log lines, or nowhere)."""

    def start(self, total_steps: int, done_steps: int) -> None: ...
    def advance(self, step: int) -> None: ...
    def log(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class SilentReporter:
    def start(self, total_steps: int, done_steps: int) -> None: ...
    def advance(self, step: int) -> None: ...
    def log(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
      state: the final (or interrupted) train state.
      status: ``"completed"`` or ``"interrupted"``.
      final: per-split metric means of the final state (completed runs only).
      best: ``{"metric", "value", "step"}`` of the best validation pass, or None.
      timing: wall and compile seconds, steps per second of this process.
      traces: how many times each compiled function was traced (1 each, always).
      early_stopping: ``{"early_stopped_at", "restored_step"}`` when patience ran out.
    """

    state: TrainState
    status: str
    final: dict[str, dict[str, float]]
    best: dict[str, Any] | None
    timing: dict[str, Any]
    traces: dict[str, int]
    early_stopping: dict[str, int] | None = None


def evaluate(compiled: CompiledTask, state: TrainState, chunks: list) -> dict[str, float]:
    """Metric means of ``state`` over padded eval batches."""
    return means(sum_metrics([compiled.eval_step(state, c) for c in chunks]))


class _Stopwatch:
    """Adds up the seconds spent inside ``with`` blocks."""

    def __init__(self):
        self.total = 0.0

    def __enter__(self):
        self._t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.total += time.perf_counter() - self._t0


def fit(
    task: Task,
    data: Dataset,
    cfg: TrainConfig,
    seed: int,
    run: RunDir | None = None,
    resume: bool = False,
    stop=NEVER_STOP,
    reporter: Reporter | None = None,
    on_validation: Callable[[TrainState, dict[str, float]], TrainState] | None = None,
) -> FitResult:
    """Trains ``task`` on ``data`` as ``cfg`` says; see the module docstring.

    Args:
      task: the task to train.
      data: the data set (train for updates, val for selection, test only at the end).
      cfg: the ``[train]`` section.
      seed: seeds parameter init, dropout and the batch order.
      run: where metrics and checkpoints go; None keeps everything in memory.
      resume: continue from ``run``'s latest committed checkpoint.
      stop: polled after every step; when set, the loop checkpoints and returns.
      reporter: progress display.
      on_validation: ``(state, val metrics) -> state`` after every validation pass, before
        the checkpoint (the plateau schedule's hook).

    Raises:
      ValueError: if ``cfg.best_metric`` is not a metric of the task.
    """
    t_begin = time.perf_counter()
    reporter = reporter or SilentReporter()
    metric = cfg.best_metric or task.default_metric
    if metric not in task.metric_modes:
        raise ValueError(
            f"train.best_metric: unknown metric {metric!r}; this task reports: "
            f"{', '.join(sorted(task.metric_modes))}"
        )
    tracker = BestTracker(metric, task.metric_modes[metric] == "max", cfg.early_stopping_patience)
    totals = getattr(task, "total_metrics", ())
    order = BatchOrder(
        len(data.train), cfg.batch_size, seed, order=getattr(task, "batch_order", "shuffled")
    )
    spe = order.steps_per_epoch
    total = cfg.epochs * spe
    compiled = CompiledTask(task)
    chunk = min(cfg.eval_batch_size, max(len(data.val), len(data.test)))
    val_chunks = eval_chunks(data.val.x, data.val.y, chunk)

    example = {"x": data.train.x[: cfg.batch_size], "y": data.train.y[: cfg.batch_size]}
    state = task.init(jax.random.PRNGKey(seed), example)
    meta: dict[str, Any] = {"pending": []}
    latest = best_store = None
    if run is not None:
        latest = CheckpointStore(run.latest, keep=cfg.keep_checkpoints)
        best_store = CheckpointStore(run.best, keep=1)
        if resume:
            state, meta = latest.restore(state)
            run.truncate_metrics(int(state.step))
    pending: list = list(meta["pending"])
    tracker.load_meta(meta)
    best_state = None  # in-memory copy of the best state when there is no run directory
    step = int(state.step)
    saved_step = step if resume else -1
    steps_run = 0

    def log_window() -> None:
        record = {
            "step": step,
            "epoch": round(step / spe, 4),
            "split": "train",
            **means(sum_metrics(pending), totals),
        }
        pending.clear()
        if run is not None:
            run.append_metrics([record])
        reporter.log(record)

    def save(state: TrainState) -> None:
        nonlocal saved_step
        if latest is None or saved_step == step:
            return
        position = order.position(step)
        with save_clock:
            latest.save(
                step,
                state,
                {
                    "step": step,
                    "position": [position.epoch, position.index],
                    "pending": [
                        {k: float(v) for k, v in m.items()} for m in jax.device_get(pending)
                    ],
                    **tracker.to_meta(),
                },
            )
        saved_step = step

    x_dev = y_dev = None
    if cfg.mode == "scan":
        x_dev, y_dev = jax.device_put(data.train.x), jax.device_put(data.train.y)
    eval_clock, save_clock = _Stopwatch(), _Stopwatch()
    reporter.start(total, step)
    t_loop = time.perf_counter()
    while step < total and not stop.requested and not tracker.should_stop:
        position = order.position(step)
        if cfg.mode == "scan" and position.index == 0:
            rows = jnp.asarray(order.indices(position.epoch), dtype=jnp.int32)
            state, stacked = compiled.train_epoch(state, x_dev, y_dev, rows)
            stacked = jax.device_get(stacked)
            for i in range(spe):
                pending.append({k: v[i] for k, v in stacked.items()})
                step += 1
                if step % cfg.log_every == 0:
                    log_window()
            steps_run += spe
            reporter.advance(step)
        else:
            for _, batch in order.batches(data.train, position):
                state, metrics = compiled.train_step(state, batch)
                pending.append(metrics)
                step += 1
                steps_run += 1
                if step % cfg.log_every == 0:
                    log_window()
                    reporter.advance(step)
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    save(state)
                if stop.requested:
                    break
        if step % spe == 0:
            epoch = step // spe
            if epoch % cfg.eval_every == 0 or step == total:
                jax.block_until_ready(state)  # finish training work outside the eval clock
                with eval_clock:
                    val = evaluate(compiled, state, val_chunks)
                if on_validation is not None:  # e.g. reduce the learning rate on a plateau
                    state = on_validation(state, val)
                record = {"step": step, "epoch": epoch, "split": "val", **val}
                if run is not None:
                    run.append_metrics([record])
                reporter.log(record)
                if tracker.observe(val[metric], step):
                    if best_store is not None:
                        with save_clock:
                            best_store.save(step, state, {"step": step, **tracker.to_meta()})
                    elif tracker.patience is not None:
                        best_state = jax.tree.map(jnp.copy, state)  # survives donation
                save(state)  # every validation pass is also a checkpoint
            reporter.advance(step)
        if stop.requested:
            save(state)
    jax.block_until_ready(state)
    t_trained = time.perf_counter()

    status = "completed" if step == total or tracker.should_stop else "interrupted"
    final: dict[str, dict[str, float]] = {}
    if tracker.should_stop and cfg.restore_best:
        if best_store is not None:
            best_store.wait()
            state, _ = best_store.restore(state)
        else:
            state = best_state
    if status == "completed":
        if pending:
            log_window()
        test_chunks = eval_chunks(data.test.x, data.test.y, chunk)
        final = {}
        # The train split is evaluated too when its examples look like val's (stream data
        # for truncated BPTT does not), so memorization shows up in summary.json.
        if data.train.x.shape[1:] == data.val.x.shape[1:]:
            train_chunks = eval_chunks(data.train.x, data.train.y, chunk)
            final["train"] = evaluate(compiled, state, train_chunks)
        final["val"] = evaluate(compiled, state, val_chunks)
        final["test"] = evaluate(compiled, state, test_chunks)

    for store in (latest, best_store):
        if store is not None:
            store.wait()
            store.close()
    reporter.close()

    compile_times = compiled.compile_times()
    # Eval passes (their compile included), checkpoint saves and the first-call compile of
    # the training function are not training time.
    train_compile = sum(
        t["lower_s"] + t["compile_s"] for name, t in compile_times.items() if name != "eval_step"
    )
    train_s = max(t_trained - t_loop - train_compile - eval_clock.total - save_clock.total, 1e-9)
    timing = {
        "wall_s": time.perf_counter() - t_begin,
        "train_s": train_s,
        "steps_run": steps_run,
        "steps_per_s": steps_run / train_s if steps_run else 0.0,
        "eval_s": eval_clock.total,
        "checkpoint_s": save_clock.total,
        "mode": cfg.mode,
        "compile": compile_times,
    }
    stopped = {"early_stopped_at": step, "restored_step": tracker.best["step"]}
    return FitResult(
        state,
        status,
        final,
        tracker.best,
        timing,
        dict(compiled.traces),
        stopped if tracker.should_stop else None,
    )
