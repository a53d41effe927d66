"""tessel's graph IR: types, the op table, immutable nodes, the verifier, parser and printer."""

from ir.attrs import Attrs, ConstData, WeightRef
from ir.builder import FunctionBuilder, constant, make_node, parameter
from ir.diagnostics import (
    GraphSyntaxError,
    GraphTypeError,
    InputError,
    Loc,
    TesselError,
    VerifyError,
)
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from ir.verify import verify_function, verify_module

__all__ = [
    "Attrs",
    "ConstData",
    "DType",
    "Function",
    "FunctionBuilder",
    "GraphSyntaxError",
    "GraphTypeError",
    "InputError",
    "Loc",
    "Module",
    "Node",
    "Op",
    "TensorType",
    "TesselError",
    "VerifyError",
    "WeightRef",
    "constant",
    "make_node",
    "parameter",
    "verify_function",
    "verify_module",
]
