"""The ``[train]`` section: how the one generic loop runs."""

from typing import Annotated, Literal

from pydantic import Field, PlainValidator, PositiveInt, ValidationInfo, field_validator

from dlcore.config.section import Section, one_of
from dlcore.engine.health import NONFINITE_POLICIES

TRAIN_MODES = ("step", "scan")


def _check_devices(value: object) -> int | str:
    if value == "all" or (type(value) is int and value >= 1):
        return value
    raise ValueError(f"must be a positive integer or 'all'; got {value!r}")


Devices = Annotated[int | str, PlainValidator(_check_devices)]


def _check_widths(value: object) -> int | list[int]:
    if type(value) is int and value >= 1:
        return value
    widths = list(value) if isinstance(value, list | tuple) else None
    if (
        widths
        and all(type(w) is int and w >= 1 for w in widths)
        and widths == sorted(set(widths))  # strictly increasing
    ):
        return widths
    raise ValueError(
        f"must be a number of buckets >= 1 or a list of increasing widths >= 1; got {value!r}"
    )


Widths = Annotated[int | list[int], PlainValidator(_check_widths)]


class TrainConfig(Section):
    """How the generic loop runs.

    ``mode = "scan"`` compiles ``scan_steps`` consecutive steps as one ``lax.scan`` over
    on-device shuffled batches (the training split must fit on the device); ``"step"``
    runs one compiled step per batch. Both give the same results. ``bucket_by`` (step mode)
    groups the training examples by length (:mod:`dlcore.data.buckets`).
    """

    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    mode: Literal[TRAIN_MODES] = "scan"  # type: ignore[valid-type]
    scan_steps: PositiveInt = Field(
        64,
        description="scan mode: steps per compiled call (an epoch is cut into equal chunks "
        "of at most this many); a stop signal is noticed between chunks",
    )
    log_every: PositiveInt = Field(50, description="steps per logged training window")
    eval_every: PositiveInt = Field(1, description="epochs between validation passes")
    checkpoint_every: PositiveInt | None = Field(
        None,
        description="steps between checkpoints (scan mode: at the end of the chunk that "
        "reaches the step); each validation pass, the end of training and a "
        "SIGINT/SIGTERM stop also save one",
    )
    keep_checkpoints: PositiveInt = Field(3, description="latest checkpoints kept")
    best_metric: str | None = Field(
        None, description="validation metric that picks the best checkpoint (task default)"
    )
    eval_batch_size: PositiveInt = 1024
    early_stopping_patience: PositiveInt | None = Field(
        None, description="stop after this many validation passes without improvement"
    )
    restore_best: bool = Field(
        True, description="after early stopping, continue with the best checkpoint's state"
    )
    on_nonfinite: one_of(NONFINITE_POLICIES, "on_nonfinite") = Field(
        "halt",
        description="a step with non-finite loss, gradients or parameters: 'halt' (exit 3 "
        "at the next log point; nothing non-finite is saved) or 'skip' (keep the previous "
        "state and halt after max_skips skipped steps)",
    )
    max_skips: PositiveInt = Field(10, description="skipped steps before a 'skip' run halts")
    devices: Devices = Field(
        1,
        description="devices to train on, or 'all': each batch is split over them (its size "
        "a multiple of their number) and XLA adds up the gradients; 1 compiles exactly the "
        "one-device program",
    )
    shard_params: bool = Field(
        False,
        description="with devices > 1: split parameters and optimizer state over the "
        "devices (each leaf along its largest dimension they divide) instead of "
        "replicating them",
    )
    bucket_by: str | None = Field(
        None,
        description="step mode: a token field (e.g. 'x') whose length groups the training "
        "examples into buckets; each batch holds one bucket and is trimmed to its width "
        "(one compile per width; evaluation is not bucketed)",
    )
    bucket_widths: Widths = Field(
        4,
        description="with bucket_by: increasing padded widths, or a number of buckets whose "
        "widths are quantiles of the training lengths",
    )

    @field_validator("bucket_by")
    @classmethod
    def _bucketing_needs_step_mode(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("mode") == "scan":
            raise ValueError(
                "needs mode = 'step': scan mode stacks batches of one shape; set "
                "train.mode = 'step'"
            )
        return value
