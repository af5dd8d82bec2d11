"""The one generic training loop: every task, and every population of members, trains here.

    config -> data -> task (models, losses, optax chains) -> compiled step -> loop -> run dir

The host loop feeds named batches to one compiled ``train_step(state, batch) -> (state,
metrics)`` (per-step mode) or to one compiled ``lax.scan`` over a chunk of consecutive
steps (scan mode), donates the state, pulls metrics to the host only when it logs,
evaluates at epoch ends, and checkpoints. Everything that decides what happens next (step,
data position, the not-yet-logged metrics, the best validation value) is in the
checkpoint, so a resumed run continues bit-identically. A population
(:class:`dlcore.engine.population.PopulationTask`) is just a task whose metrics carry a
member axis: the loop tracks the best pass of each member and freezes a member whose
patience ran out (:mod:`dlcore.engine.members`).
"""

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.data.buckets import BucketedOrder, bucket_order
from dlcore.data.dataset import Dataset
from dlcore.engine.compiled import CompiledTask, eval_chunks, sum_metrics
from dlcore.engine.distributed import AgreedStop, host_local
from dlcore.engine.health import HealthWatch
from dlcore.engine.members import MemberTrackers
from dlcore.engine.selection import BestTracker
from dlcore.engine.sharding import check_data_parallel, device_count, placement
from dlcore.engine.signals import NEVER_STOP
from dlcore.engine.state import TrainState
from dlcore.engine.stopwatch import Stopwatch
from dlcore.engine.task import Task
from dlcore.engine.train_config import TrainConfig
from dlcore.runs.checkpoint import CheckpointStore, restore_newest_intact
from dlcore.runs.run_dir import RunDir


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
      status: ``"completed"``, ``"interrupted"`` or ``"diverged"`` (non-finite values).
      final: per-split metric means of the final state (completed runs only); a
        population's values are lists, one per member.
      best: ``{"metric", "value", "step"}`` of the best validation pass, or None; a list of
        those, one per member, for a population.
      timing: wall and compile seconds, steps per second of this process (and, when
        bucketed, ``bucketing``: :meth:`dlcore.data.buckets.BucketedOrder.report`).
      traces: how many times each compiled function was traced.
      early_stopping: ``{"early_stopped_at", "restored_step"}`` when patience ran out (a
        population: a list, None for each member that did not stop).
      health: ``{"on_nonfinite", "skipped_steps", "first_nonfinite", "halted",
        "last_checkpoint"}``; ``halted`` is the one-line reason when status is "diverged".
    """

    state: TrainState
    status: str
    final: dict[str, dict[str, Any]]
    best: Any
    timing: dict[str, Any]
    traces: dict[str, int]
    early_stopping: Any = None
    health: dict[str, Any] | None = None


def evaluate(compiled: CompiledTask, state: TrainState, chunks: list) -> dict[str, Any]:
    """The metrics of ``state`` over padded eval batches (the task summarizes the sums)."""
    return compiled.task.summarize(
        sum_metrics([compiled.eval_step(state, c) for c in chunks]), training_window=False
    )


def scan_chunk(steps_per_epoch: int, scan_steps: int) -> int:
    """Steps per scan call: an epoch cut into equal chunks of at most ``scan_steps``
    (only the last may be shorter), so a run compiles at most two scan lengths."""
    pieces = math.ceil(steps_per_epoch / min(scan_steps, steps_per_epoch))
    return math.ceil(steps_per_epoch / pieces)


def _host_step(state: TrainState) -> int:
    # A population stacks one step counter per member; they always move together.
    return int(np.asarray(jax.device_get(state.step)).reshape(-1)[0])


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
    member_patience: list[int | None] | None = None,
) -> FitResult:
    """Trains ``task`` on ``data`` as ``cfg`` says; see the module docstring.

    Args:
      task: the task to train (or a population of it).
      data: the data set (train for updates, val for selection, test only at the end).
      cfg: the ``[train]`` section.
      seed: seeds parameter init, dropout and the batch order.
      run: where metrics and checkpoints go; None keeps everything in memory.
      resume: continue from ``run``'s latest committed checkpoint.
      stop: polled after every step (scan mode: every chunk); when set, the loop
        checkpoints and returns.
      reporter: progress display.
      on_validation: ``(state, val metrics) -> state`` after every validation pass, before
        the checkpoint (the plateau schedule's hook).
      member_patience: a population's patience per member (default: ``cfg``'s for all);
        a member that runs out is frozen (:mod:`dlcore.engine.members`).

    Raises:
      ValueError: if ``cfg.best_metric`` is not a metric of the task, a population is
        given a run directory, or ``cfg.devices`` cannot run this batch
        size (:func:`dlcore.engine.sharding.check_data_parallel`), or ``cfg.bucket_by``
        cannot bucket the data (:func:`dlcore.data.buckets.bucket_order`).
    """
    t_begin = time.perf_counter()
    reporter = reporter or SilentReporter()
    metric = cfg.best_metric or task.default_metric
    if metric not in task.metric_modes:
        raise ValueError(
            f"train.best_metric: unknown metric {metric!r}; this task reports: "
            f"{', '.join(sorted(task.metric_modes))}"
        )
    members = task.members
    if members > 1 and run is not None:
        raise ValueError("population training keeps no run directory")
    maximize = task.metric_modes[metric] == "max"
    tracker = BestTracker(metric, maximize, cfg.early_stopping_patience)  # a single run's
    patiences = member_patience or [cfg.early_stopping_patience] * members
    population = MemberTrackers.create(metric, maximize, patiences) if members > 1 else None
    stopping = population or tracker  # stops when (every member's) patience ran out
    order = task.make_order(len(data.train), cfg.batch_size, seed)
    order = bucket_order(order, data, cfg.bucket_by, cfg.bucket_widths)  # as is when None
    spe = order.steps_per_epoch
    total = cfg.epochs * spe
    chunk_len = scan_chunk(spe, cfg.scan_steps)
    devices = device_count(cfg.devices, jax.device_count())
    check_data_parallel(
        devices,
        jax.device_count(),
        cfg.batch_size,
        members,
        cfg.shard_params,
        jax.process_count(),
    )
    where = placement(devices, cfg.shard_params, members)
    # Processes of one run stop at the same step. Step mode polls once a step, scan mode
    # once a chunk: an exchange every 10 steps or every chunk bounds both the delay and
    # the cost (one small all-gather, ~2 ms on CPU).
    stop = AgreedStop(stop, every=10 if cfg.mode == "step" else 1)
    compiled = CompiledTask(task, cfg.on_nonfinite, where, order.batch_shapes)
    chunk = where.eval_chunk(min(cfg.eval_batch_size, max(len(data.val), len(data.test))))

    def placed_chunks(fields: dict) -> list:
        return [where.eval_batch(c) for c in eval_chunks(fields, chunk, put=False)]

    val_chunks = placed_chunks(data.val.fields)
    # Made where it lives; a resume restores straight into these shardings.
    state = where.init(
        task.init, jax.random.PRNGKey(seed), data.train.rows(slice(0, cfg.batch_size))
    )
    meta: dict[str, Any] = {"pending": []}
    latest = best_store = None
    if run is not None:
        # Saves run beside training, one in flight per store (dlcore.runs.background).
        latest = CheckpointStore(run.latest, keep=cfg.keep_checkpoints, background=True)
        best_store = CheckpointStore(run.best, keep=1, background=True)
        if resume:  # the newest intact checkpoint; a `best` one holds no pending window
            state, meta = restore_newest_intact(latest, state, fallbacks=[best_store])
            meta.setdefault("pending", [])
            run.truncate_metrics(int(state.step))
    pending: list = list(meta["pending"])
    tracker.load_meta(meta)
    # Populations only report: a member that diverges shows it in its metrics.
    watch = HealthWatch(cfg.on_nonfinite, cfg.max_skips, members == 1, meta.get("skipped", 0))
    halted: str | None = None
    best_state = None  # in-memory copy of the best state when there is no run directory
    step = _host_step(state)
    saved_step = step if resume else -1
    steps_run = 0

    def healthy() -> bool:
        nonlocal halted
        halted = halted or watch.check()
        return halted is None

    def log_window() -> None:
        if not healthy():
            return  # the window holds the non-finite step: it is never logged
        record = {
            "step": step,
            "epoch": round(step / spe, 4),
            "split": "train",
            **task.summarize(sum_metrics(pending), training_window=True),
        }
        pending.clear()
        if run is not None:  # made durable before the next checkpoint (sync_metrics)
            run.append_metrics([record], durable=False)
        reporter.log(record)

    def save(state: TrainState) -> None:
        nonlocal saved_step
        if latest is None or saved_step == step or not healthy():
            return  # nothing non-finite is ever committed
        position = order.position(step)
        with save_clock:
            run.sync_metrics()  # every line up to the checkpoint is on disk before it
            latest.save(
                step,
                state,
                {
                    "step": step,
                    "position": [position.epoch, position.index],
                    "pending": [  # floats, or lists for per-class or per-member sums
                        {k: np.asarray(v, np.float64).tolist() for k, v in m.items()}
                        for m in jax.device_get(pending)
                    ],
                    **tracker.to_meta(),
                    "skipped": watch.skipped,
                },
            )
        saved_step = step

    fields_dev = where.fields(data.train.fields) if cfg.mode == "scan" else None
    eval_clock, save_clock = Stopwatch(), Stopwatch()
    reporter.start(total, step)
    t_loop = time.perf_counter()
    while step < total and not stop.requested and not stopping.should_stop and halted is None:
        due = False  # a checkpoint_every save is due at the current step
        position = order.position(step)
        if cfg.mode == "scan":
            end = min((position.index // chunk_len + 1) * chunk_len, spe)
            rows = order.indices(position.epoch)[position.index : end].astype(np.int32)
            rows = where.rows(rows)
            state, (stacked, health) = compiled.train_scan(state, fields_dev, rows)
            stacked, health = jax.device_get((stacked, health))
            for i in range(end - position.index):
                pending.append({k: v[i] for k, v in stacked.items()})
                watch.add(step + 1, {k: v[i] for k, v in health.items()}, pending[-1])
                step += 1
                if step % cfg.log_every == 0:
                    log_window()
            steps_run += end - position.index
            reporter.advance(step)
            every = cfg.checkpoint_every
            due = bool(every) and step // every > (step - (end - position.index)) // every
        else:
            for _, batch in order.batches(data.train, position, where.local_rows):
                state, metrics, health = compiled.train_step(state, where.batch(batch))
                pending.append(metrics)
                watch.add(step + 1, health, metrics)
                step += 1
                steps_run += 1
                if step % cfg.log_every == 0:
                    log_window()
                    reporter.advance(step)
                due = bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0
                if due and step % spe:  # at an epoch's end it waits for the validation pass
                    save(state)
                if stop.requested or halted is not None:
                    break
        if step % spe == 0 and healthy():
            epoch = step // spe
            if epoch % cfg.eval_every == 0 or step == total:
                jax.block_until_ready(state)  # finish training work outside the eval clock
                with eval_clock:
                    val = evaluate(compiled, state, val_chunks)
                if on_validation is not None:  # e.g. reduce the learning rate on a plateau
                    state = where.state(on_validation(state, val))
                record = {"step": step, "epoch": epoch, "split": "val", **val}
                if run is not None:
                    run.append_metrics([record], durable=False)
                reporter.log(record)
                if population is not None:  # freezes the members that stop here
                    state = where.state(population.observe(state, val[metric], step))
                elif tracker.observe(float(val[metric]), step):
                    if best_store is not None:
                        with save_clock:
                            run.sync_metrics()
                            best_store.save(step, state, {"step": step, **tracker.to_meta()})
                    elif tracker.patience is not None:
                        best_state = jax.tree.map(jnp.copy, state)  # survives donation
                save(state)  # every validation pass is also a checkpoint
                if run is not None:  # per-epoch pictures; a pure function of the state
                    with eval_clock:
                        local = host_local(state)  # (a collective: every process is here)
                        if run.writer:
                            task.snapshot(local, data, run.snapshots, epoch)
            reporter.advance(step)
        if due or stop.requested:
            save(state)  # a no-op when the validation pass already saved this step
    jax.block_until_ready(state)
    t_trained = time.perf_counter()

    healthy()
    status = "completed" if step >= total or stopping.should_stop else "interrupted"
    if halted is not None:
        status = "diverged"
    final: dict[str, dict[str, Any]] = {}
    if population is not None:
        state = where.state(population.finish(state, cfg.restore_best))
    elif tracker.should_stop and cfg.restore_best:
        if best_store is not None:
            best_store.wait()
            state, _ = best_store.restore(state)
        else:
            state = best_state
    if status == "completed":
        if pending:
            log_window()
        # The train split is evaluated too when its examples look like val's (stream data
        # for truncated BPTT does not), so memorization shows up in summary.json.
        same_shapes = all(
            k in data.val and v.shape[1:] == data.val[k].shape[1:]
            for k, v in data.train.fields.items()
        )
        if same_shapes:
            final["train"] = evaluate(compiled, state, placed_chunks(data.train.fields))
        final["val"] = evaluate(compiled, state, val_chunks)
        final["test"] = evaluate(compiled, state, placed_chunks(data.test.fields))

    if run is not None:
        run.sync_metrics()
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
        "devices": devices,
        "processes": jax.process_count(),
        "compile": compile_times,
    }
    if isinstance(order, BucketedOrder):  # the padding it saved explains steps_per_s
        timing["bucketing"] = order.report()
    stopped = None  # a stop before the first validation pass has no best step yet
    if population is not None:
        stopped = population.early_stopping()
    elif tracker.should_stop:
        stopped = {"early_stopped_at": step, "restored_step": tracker.best["step"]}
    return FitResult(
        state,
        status,
        final,
        tracker.best if population is None else population.best,
        timing,
        dict(compiled.traces),
        stopped,
        {
            "on_nonfinite": cfg.on_nonfinite,
            "skipped_steps": watch.skipped,
            "first_nonfinite": watch.first_bad,
            "halted": halted,
            "last_checkpoint": saved_step if saved_step >= 0 else None,
        },
    )
