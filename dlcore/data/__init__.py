"""Data: splits of named arrays, their description and batch order (the registry of data
sets is ``dlcore.data.registry``, kept apart so the engine can use these containers)."""

from dlcore.data.buckets import BucketedOrder, bucket_order
from dlcore.data.dataset import (
    ROLES,
    SPLITS,
    Dataset,
    DataSpec,
    FieldSpec,
    Split,
    SplitName,
    apply_preprocessing,
)
from dlcore.data.iterator import BatchOrder, Position, StackedOrder

__all__ = [
    "ROLES",
    "SPLITS",
    "BatchOrder",
    "BucketedOrder",
    "DataSpec",
    "Dataset",
    "FieldSpec",
    "Position",
    "Split",
    "SplitName",
    "StackedOrder",
    "apply_preprocessing",
    "bucket_order",
]
