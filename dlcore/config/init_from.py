"""The ``[init]`` section: start a run from the parameters of another run (transfer learning).

::

    [init]
    run = "runs/digits04-20250101-120000"  # the source run directory
    checkpoint = "best"                    # or "latest"
    exclude = ["dense2"]                   # the head: kept at its fresh init (replaced)
    map = { "features" = "backbone" }      # target path prefix = source path prefix
    sum_in_channels = ["conv1/kernel"]     # RGB source kernel -> grey target kernel

Parameter paths join the keys of the parameter tree with ``/`` (``conv1/kernel``), as the
optimizer's ``freeze`` patterns do. Every target parameter that no ``exclude`` glob matches
is loaded from the source parameter at its path, after replacing the longest ``map`` prefix
that starts it. The checks run when the experiment is built, before a run directory
exists; what is loaded and from where is in :mod:`dlcore.experiment.transfer`.
"""

from typing import Annotated

from pydantic import Field, model_validator

from dlcore.config.section import Section, one_of
from dlcore.runs.run_dir import CHECKPOINTS

MODEL_STATE_SOURCES = ("source", "fresh")

Pattern = Annotated[str, Field(min_length=1)]


def _prefix_ok(prefix: str) -> bool:
    """``''`` or ``/``-joined non-empty keys (no leading, trailing or doubled ``/``)."""
    return prefix == "" or "" not in prefix.split("/")


class InitConfig(Section):
    """Initialise the parameters from another run's checkpoint (see the module docstring).

    Example:
      >>> InitConfig(run="runs/src", exclude=["dense2"]).checkpoint
      'best'
    """

    run: str = Field(
        min_length=1, description="the source run directory (relative to the working directory)"
    )
    checkpoint: one_of(CHECKPOINTS, "checkpoint") = Field(
        "best", description="which of the source run's checkpoints: 'best' or 'latest'"
    )
    map: dict[str, str] = Field(
        default_factory=dict,
        description="target path prefix -> source path prefix ('' maps the whole tree)",
    )
    exclude: tuple[Pattern, ...] = Field(
        (), description="globs of target parameters kept at their fresh init (a new head)"
    )
    sum_in_channels: tuple[Pattern, ...] = Field(
        (),
        description="globs of conv kernels [..., C, F] loaded from a source with more input "
        "channels by summing them (a grey image fed as C equal channels)",
    )
    model_state: one_of(MODEL_STATE_SOURCES, "model_state source") = Field(
        "source", description="batch statistics: 'source' (loaded like params) or 'fresh'"
    )
    allow_unused: bool = Field(
        False, description="accept source parameters that no target parameter loads"
    )

    @model_validator(mode="after")
    def _prefixes_are_paths(self):
        for target, source in self.map.items():
            for prefix in (target, source):
                if not _prefix_ok(prefix):
                    raise ValueError(
                        f"map: {target!r} = {source!r}: prefixes are '/'-joined parameter "
                        "paths without empty parts (e.g. 'conv1' or 'encoder/Dense_0'), or ''"
                    )
        return self
