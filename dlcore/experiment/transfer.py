"""Transfer learning: the ``[init]`` section turned into a warm-started task.

When an experiment with ``[init]`` is built, the source run is opened through
:func:`dlcore.experiment.restore.restore_run` (its config rebuilt, its data checked against
the recorded fingerprint, the checkpoint's digest verified) and its parameters are matched
to the target task's, whose shapes come from ``jax.eval_shape`` of ``task.init`` (nothing
allocated). Every problem is one config line naming ``init`` or ``init.run``, raised before
a run directory exists:

- a target parameter with no source parameter at its (mapped) path;
- shapes that differ (each path with both shapes);
- a source parameter that no target parameter loads (unless ``allow_unused``);
- an ``exclude``, ``sum_in_channels`` or ``map`` entry that matches nothing.

Matching (:func:`plan_transfer`) is a pure function of the two shape tables. The values go
into a :class:`~dlcore.engine.warm_start.WarmStartTask`, so a resumed transfer run
restores its own checkpoint (``restore_run`` rebuilds with ``warm_start=False``) and never
reads the source again.
"""

from collections.abc import Mapping

import jax
import numpy as np

from dlcore.config.errors import ConfigError, FieldError
from dlcore.config.init_from import InitConfig
from dlcore.engine.task import Batch, Task
from dlcore.engine.warm_start import WarmStartTask
from dlcore.optim.freezing import param_paths, path_matches
from dlcore.runs.errors import RunDirError

Shapes = Mapping[str, tuple[int, ...]]  # "/"-joined path -> shape
SHOWN = 8  # paths listed in one error line before "..."


def map_path(path: str, prefixes: Mapping[str, str]) -> str:
    """``path`` with its longest matching target prefix replaced by the source prefix.

    Example:
      >>> map_path("head/kernel", {"head": "dense2", "": "backbone"})
      'dense2/kernel'
      >>> map_path("conv1/bias", {"head": "dense2", "": "backbone"})
      'backbone/conv1/bias'
    """
    best = None
    for target in prefixes:
        if _starts(target, path) and (best is None or len(target) > len(best)):
            best = target
    if best is None:
        return path
    rest = path[len(best) :].lstrip("/")
    return "/".join(part for part in (prefixes[best], rest) if part)


def _starts(prefix: str, path: str) -> bool:
    """Whether ``prefix`` is ``''``, ``path`` itself, or ``path``'s leading keys."""
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:SHOWN])
    return shown + (f"; ... ({len(items)} in all)" if len(items) > SHOWN else "")


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def plan_transfer(target: Shapes, source: Shapes, init: InitConfig, where: str) -> dict[str, str]:
    """Which source parameter each target parameter loads: ``{target path: source path}``.

    Args:
      target: the target task's parameter shapes.
      source: the source run's parameter shapes.
      init: the ``[init]`` section (``map``, ``exclude``, ``sum_in_channels``,
        ``allow_unused``).
      where: how the source is named in messages (``runs/x, best step 120``).

    Raises:
      FieldError: one line naming ``init`` (see the module docstring).

    Example:
      >>> init = InitConfig(run="runs/src", exclude=["head"])
      >>> plan_transfer({"body/w": (3,), "head/w": (2,)}, {"body/w": (3,), "head/w": (5,)},
      ...               init, "runs/src")
      {'body/w': 'body/w'}
    """
    for field, patterns in (("exclude", init.exclude), ("sum_in_channels", init.sum_in_channels)):
        for pattern in patterns:
            if not any(path_matches([pattern], t) for t in target):
                raise FieldError(
                    f"init.{field}",
                    f"pattern {pattern!r} matches no target parameter; target paths are: "
                    + ", ".join(list(target)[:SHOWN]),
                )
    for prefix in init.map:
        if not any(_starts(prefix, t) for t in target):
            raise FieldError("init.map", f"prefix {prefix!r} starts no target parameter path")
    plan, missing, differ, claimed = {}, [], [], set()
    for t, shape in target.items():
        s = map_path(t, init.map)
        if path_matches(init.exclude, t):
            claimed.add(s)  # replaced on purpose (a new head): its source is not "unused"
            continue
        if s not in source:
            missing.append(t if s == t else f"{t} <- {s}")
            continue
        if not _fits(shape, source[s], path_matches(init.sum_in_channels, t)):
            shown = "" if s == t else f" {s}"
            differ.append(f"{t} {_shape(shape)} vs source{shown} {_shape(source[s])}")
            continue
        plan[t] = s
    if missing:
        raise FieldError(
            "init",
            f"target parameters with no source parameter in {where}: {_listed(missing)}; "
            "exclude them (kept at their fresh init) or map them",
        )
    if differ:
        raise FieldError(
            "init",
            f"parameter shapes differ from {where}: {_listed(differ)}; exclude them (e.g. a "
            "new head) or map them",
        )
    unused = [s for s in source if s not in claimed and s not in plan.values()]
    if unused and not init.allow_unused:
        raise FieldError(
            "init",
            f"source parameters that no target parameter loads in {where}: {_listed(unused)}; "
            "map them, or set allow_unused = true",
        )
    return plan


def _fits(target: tuple[int, ...], source: tuple[int, ...], summed: bool) -> bool:
    """Equal shapes, or (``summed``) a one-input-channel kernel from a C-channel one."""
    if tuple(target) == tuple(source):
        return True
    if not summed or len(target) < 2 or len(target) != len(source) or target[-2] != 1:
        return False
    return target[:-2] + target[-1:] == source[:-2] + source[-1:]


def _module_keys(model_state, params) -> dict[str, tuple[str, str]]:
    """``model_state`` path -> ``(collection, module path)`` (``batch_stats/bn/mean`` ->
    ``("batch_stats", "bn/mean")``): the collection is the first key that is no parameter
    prefix, so batch statistics follow the ``map`` and ``exclude`` of their layer."""
    prefixes = set()
    for path in param_paths(params):
        parts = path.split("/")
        prefixes.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
    keys = {}
    for path in param_paths(model_state):
        parts = path.split("/")
        i = next((n for n in range(len(parts)) if "/".join(parts[: n + 1]) not in prefixes), 0)
        keys[path] = (parts[i], "/".join(parts[:i] + parts[i + 1 :]))
    return keys


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    return {
        p: tuple(x.shape) for p, x in zip(param_paths(tree), jax.tree.leaves(tree), strict=True)
    }


def _leaves(tree) -> dict[str, np.ndarray]:
    flat = jax.tree.leaves(tree)
    return dict(zip(param_paths(tree), (np.asarray(jax.device_get(x)) for x in flat), strict=True))


def _open_source(init: InitConfig):
    # restore_run builds experiments, and build calls this module: imported when used.
    from dlcore.experiment.restore import restore_run

    try:
        return restore_run(init.run, init.checkpoint)
    except RunDirError as err:
        raise FieldError("init.run", str(err)) from None
    except ConfigError as err:
        raise FieldError("init.run", f"the source run's config: {'; '.join(err.lines())}") from None


def warm_start(init: InitConfig, task: Task, example: Batch, seed: int = 0) -> WarmStartTask:
    """``task`` that starts from the source run's parameters as ``init`` says.

    Args:
      init: the ``[init]`` section.
      task: the built target task.
      example: an example training batch (shapes only).
      seed: the experiment's seed (the abstract init is traced with its key).

    Raises:
      FieldError: naming ``init.run`` (no such run, no such checkpoint, data that changed
        since the source trained) or ``init`` (see :func:`plan_transfer`).
    """
    restored = _open_source(init)
    step = restored.meta.get("step", int(restored.state.step))
    where = f"{init.run} ({init.checkpoint} checkpoint, step {step})"
    shapes = jax.eval_shape(task.init, jax.random.PRNGKey(seed), example)
    target = _shapes(shapes.params)
    values = _leaves(restored.state.params)
    plan = plan_transfer(target, {p: v.shape for p, v in values.items()}, init, where)
    params = {t: _converted(values[s], target[t]) for t, s in plan.items()}
    model_state = {}
    if init.model_state == "source":
        model_state = _model_state_values(init, shapes, restored.state, where)
    return WarmStartTask(task, params, model_state)


def _converted(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The source value itself, or summed over input channels for a one-channel kernel."""
    if tuple(value.shape) == tuple(shape):
        return value
    return value.sum(axis=-2, keepdims=True, dtype=value.dtype)


def _model_state_values(init: InitConfig, shapes, source_state, where: str) -> dict:
    """Target ``model_state`` leaves loaded from the source's, following their layers."""
    target_keys = _module_keys(shapes.model_state, shapes.params)
    source_values = _leaves(source_state.model_state)
    by_key = dict(
        zip(
            _module_keys(source_state.model_state, source_state.params).values(),
            source_values.values(),
            strict=True,
        )
    )
    target_shapes = _shapes(shapes.model_state)
    values, missing = {}, []
    for path, (collection, module) in target_keys.items():
        if path_matches(init.exclude, module):
            continue
        value = by_key.get((collection, map_path(module, init.map)))
        if value is None or tuple(value.shape) != tuple(target_shapes[path]):
            missing.append(path)
            continue
        values[path] = value
    if missing:
        raise FieldError(
            "init.model_state",
            f"no source value of the same shape in {where} for {_listed(missing)}; "
            "set model_state = 'fresh' or exclude their layers",
        )
    return values
