"""What a task's builder receives: the validated config, the data's description, and
helpers that build the models and optax chains it asks for by role.

A task declares its roles on its config section (``model_roles``, ``optimizer_roles``):
``"model"`` is the ``[model]`` section (and ``[optimizer]``); any other role ``r`` is the
``[models.r]`` section, trained by ``[optimizers.r]`` when given, else by a chain built from
``[optimizer]``. :func:`check_sections` refuses sections a task would ignore.
"""

from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import optax

from dlcore.config.errors import FieldError
from dlcore.config.section import Section
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need, first_unmet, fitting
from dlcore.engine.health import track_gradients
from dlcore.engine.task import Task
from dlcore.models.registry import MODELS
from dlcore.optim import build_optimizer


def _field(role: str) -> str:
    return "model" if role == "model" else f"models.{role}"


def _roles_text(roles: tuple[str, ...]) -> str:
    return ", ".join(f"[{_field(r)}]" for r in roles)


class BuildContext:
    """Builds a task's models and chains from the experiment config.

    Attributes:
      cfg: the validated experiment config (``cfg.task`` is the task's section).
      data: the data set's description.
      make_optimizer: ``optimizer section -> chain``; population training replaces it to
        give every member its own learning rate.
    """

    def __init__(
        self,
        cfg: Any,
        data: DataSpec,
        make_optimizer: Callable[[Section], optax.GradientTransformation] = build_optimizer,
    ):
        self.cfg = cfg
        self.data = data
        self.make_optimizer = make_optimizer

    @property
    def task(self) -> Section:
        return self.cfg.task

    def model_section(self, role: str = "model") -> Section:
        return self.cfg.model if role == "model" else self.cfg.models[role]

    def model(self, out_features, role: str = "model", reads_data: bool = True) -> nn.Module:
        """The module of ``role`` with ``out_features`` outputs.

        Args:
          out_features: output width (or a model-specific structure, e.g. heads).
          role: ``"model"`` or a role the task declared.
          reads_data: the model reads the data's ``x`` (its needs are checked against it);
            False for models fed by another model (a generator's noise, a decoder's code).

        Raises:
          FieldError: when the data do not fit the model or the model cannot be built.
        """
        section = self.model_section(role)
        field = _field(role)
        if reads_data:
            problem = first_unmet(section.needs(), self.data)
            if problem is not None:
                others = fitting({n: e.config().needs for n, e in MODELS.items()}, self.data)
                hint = f"; models that fit: {', '.join(others)}" if others else ""
                raise FieldError(f"{field}.name", f"{section.name} {problem}{hint}")
        try:
            return section.make(out_features, self.data)
        except ValueError as err:
            raise FieldError(field, str(err)) from None

    def optimizer(self, role: str = "model") -> optax.GradientTransformation:
        """The optax chain of ``role``: ``[optimizers.role]`` if given, else ``[optimizer]``."""
        section = self.cfg.optimizers.get(role, self.cfg.optimizer)
        # Records the gradient norm and finiteness the loop's health check reads.
        return optax.chain(track_gradients(), self.make_optimizer(section))


def check_sections(cfg: Any) -> None:
    """Refuses model/optimizer sections the task does not use, and missing ones.

    Raises:
      FieldError: naming the section and what the task uses instead.
    """
    task = cfg.task
    roles, chains = task.model_roles, task.optimizer_roles
    if "model" in roles and cfg.model is None:
        raise FieldError("model", f"missing; the {task.name} task needs a [model] section")
    if "model" not in roles and cfg.model is not None:
        if not roles:
            raise FieldError(
                "model", f"the {task.name} task has its own model; remove the [model] section"
            )
        raise FieldError(
            "model", f"the {task.name} task uses {_roles_text(roles)}, not [model]; move it"
        )
    for role in roles:
        if role != "model" and role not in cfg.models:
            raise FieldError(
                f"models.{role}",
                f"missing; the {task.name} task needs {_roles_text(roles)} (e.g. name = 'mlp')",
            )
    for role in cfg.models:
        if role not in roles:
            uses = _roles_text(roles) if roles else "no model sections"
            raise FieldError(
                f"models.{role}", f"the {task.name} task has no model {role!r}; it uses {uses}"
            )
    for role in cfg.optimizers:
        if role not in chains or role == "model":
            named = [c for c in chains if c != "model"]
            uses = (
                f"its chains: {', '.join(named)}" if named else "it has one chain: use [optimizer]"
            )
            raise FieldError(
                f"optimizers.{role}", f"the {task.name} task has no chain {role!r}; {uses}"
            )


class TaskSection(Section):
    """The base of every ``[task]`` section: what the task builds and needs.

    Class attributes:
      model_roles: the models it builds (see the module docstring); ``()`` for none.
      optimizer_roles: its optax chains, by the same naming.
    """

    model_roles: ClassVar[tuple[str, ...]] = ("model",)
    optimizer_roles: ClassVar[tuple[str, ...]] = ("model",)

    def needs(self) -> tuple[Need, ...]:
        """The data fields the task reads, checked before anything is built."""
        return ()

    def build(self, ctx: BuildContext) -> Task:
        """The task, with its models and chains from ``ctx``."""
        raise NotImplementedError(f"{type(self).__name__} must define build(ctx)")
