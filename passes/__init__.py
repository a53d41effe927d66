"""Graph passes. Importing this package registers every pass in `passes.base.REGISTRY`."""

from passes import (  # noqa: F401
    buffers,
    canonicalize,
    cleanup,
    complex,
    decompose,
    fold,
    fuse,
    mixed_precision,
    qdq,
    recompose,
    requantize,
    widen,
)
from passes.base import REGISTRY, Pass, PassContext
from passes.manager import PassManager
from passes.pipeline import parse_pipeline

__all__ = ["REGISTRY", "Pass", "PassContext", "PassManager", "parse_pipeline"]
