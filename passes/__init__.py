"""Graph passes. Importing this package registers every pass in `passes.base.REGISTRY`."""

import passes.mixed_precision  # noqa: F401
from passes import buffers, canonicalize, cleanup, decompose, fold, fuse, recompose  # noqa: F401
from passes.base import REGISTRY, Pass, PassContext
from passes.manager import PassManager
from passes.pipeline import parse_pipeline
from passes.pipelines import DEFAULT_PIPELINES

__all__ = ["DEFAULT_PIPELINES", "REGISTRY", "Pass", "PassContext", "PassManager", "parse_pipeline"]
