"""A compiled TPU program: instructions, weight image and host memory layout, and running it.

The host memory is one byte array; every input, output and intermediate the TPU touches has
an offset in it (`HostTensor`). Running a program copies the inputs in, runs the simulator and
copies the outputs out, so the user only sees NumPy arrays.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.tpu.config import TpuConfig, preset
from runtime.tpu.isa import Instruction, decode_program, encode_program
from runtime.tpu.machine import TpuError
from runtime.tpu.sim import Result, Simulator

ALIGN = 64


@dataclass(frozen=True)
class HostTensor:
    name: str
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "offset": self.offset,
            "dtype": self.dtype.name,
            "shape": list(self.shape),
        }


@dataclass
class HostLayout:
    """Bump allocation of host memory, aligned."""

    tensors: dict[str, HostTensor] = field(default_factory=dict)
    size: int = 0

    def add(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> HostTensor:
        if name in self.tensors:
            raise ValueError(f"host tensor {name!r} is already placed")
        t = HostTensor(name, self.size, np.dtype(dtype), tuple(shape))
        self.tensors[name] = t
        self.size = -(-(self.size + t.nbytes) // ALIGN) * ALIGN
        return t


@dataclass
class TpuProgram:
    config: TpuConfig
    instructions: list[Instruction]
    weights: np.ndarray  # uint8 weight memory image
    layout: HostLayout
    inputs: list[str]
    outputs: list[str]
    useful_macs: int = 0

    def run(self, args: list[np.ndarray], mode: str = "native") -> tuple[list[np.ndarray], Result]:
        host = np.zeros(max(self.layout.size, 1), np.uint8)
        if len(args) != len(self.inputs):
            raise TpuError(f"the program takes {len(self.inputs)} inputs, got {len(args)}")
        for name, value in zip(self.inputs, args, strict=True):
            t = self.layout.tensors[name]
            value = np.asarray(value)
            if value.shape != t.shape or value.dtype != t.dtype:
                raise TpuError(
                    f"input {name!r}: expected {t.dtype.name}{list(t.shape)}, got "
                    f"{value.dtype.name}{list(value.shape)}"
                )
            host[t.offset : t.offset + t.nbytes] = (
                np.ascontiguousarray(value).view(np.uint8).ravel()
            )
        result = Simulator(self.config, mode).run(
            self.instructions, host, self.weights, useful_macs=self.useful_macs or None
        )
        outputs = []
        for name in self.outputs:
            t = self.layout.tensors[name]
            raw = host[t.offset : t.offset + t.nbytes]
            outputs.append(raw.view(t.dtype).reshape(t.shape).copy())
        return outputs, result

    def metadata(self) -> dict[str, Any]:
        return {
            "preset": self.config.name,
            "instructions": len(self.instructions),
            "weight_bytes": int(self.weights.size),
            "host_bytes": self.layout.size,
            "inputs": [self.layout.tensors[n].as_dict() for n in self.inputs],
            "outputs": [self.layout.tensors[n].as_dict() for n in self.outputs],
            "tensors": [t.as_dict() for t in self.layout.tensors.values()],
            "useful_macs": self.useful_macs,
        }

    def binary(self) -> bytes:
        return encode_program(self.instructions)

    @classmethod
    def from_files(cls, metadata: dict[str, Any], code: bytes, weights: bytes) -> TpuProgram:
        layout = HostLayout()
        for t in metadata["tensors"]:
            placed = layout.add(t["name"], np.dtype(t["dtype"]), tuple(t["shape"]))
            if placed.offset != t["offset"]:
                raise TpuError(
                    f"tensor {t['name']!r}: metadata offset {t['offset']} does not "
                    f"match the layout ({placed.offset})"
                )
        return cls(
            preset(metadata["preset"]),
            decode_program(code),
            np.frombuffer(weights, np.uint8),
            layout,
            [t["name"] for t in metadata["inputs"]],
            [t["name"] for t in metadata["outputs"]],
            metadata.get("useful_macs", 0),
        )

    def metadata_json(self) -> str:
        return json.dumps(self.metadata(), indent=2) + "\n"
