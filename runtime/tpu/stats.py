"""What a run tells the user: cycles and where they went, utilization, TOPS, bytes moved."""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.tpu.config import TpuConfig
from runtime.tpu.isa import Instruction, Queue
from runtime.tpu.timing import CATEGORIES

LABELS = {
    "array_active": "array active",
    "weight_stall": "weight stall (memory)",
    "weight_shift": "weight shift",
    "input_stall": "input stall (host)",
    "non_matrix": "non-matrix",
}


@dataclass
class Record:
    """One executed instruction: where it is in the program, when it ran, why the array idled."""

    index: int
    instruction: Instruction
    queue: Queue
    start: int
    end: int
    stall: dict[str, int] = field(default_factory=dict)


@dataclass
class RunStats:
    config: TpuConfig
    mode: str
    cycles: int
    breakdown: dict[str, int]  # the CATEGORIES; they sum to `cycles`
    useful_macs: int
    array_macs: int  # rows x cols per streamed vector, padding included
    instructions: int
    matrix_cycles: int = 0  # when the last matrix multiply's results were in the accumulators
    host_read: int = 0
    host_written: int = 0
    weights_read: int = 0

    @property
    def seconds(self) -> float:
        return self.cycles / self.config.clock_hz

    @property
    def utilization(self) -> float:
        """Useful multiply-adds over what the array could have done in the run's cycles."""
        return self.useful_macs / max(1, self.cycles * self.config.rows * self.config.cols)

    @property
    def tops(self) -> float:
        return 2 * self.useful_macs / self.seconds / 1e12 if self.cycles else 0.0

    @property
    def intensity(self) -> float:
        """Multiply-adds per weight byte (the TPU paper's roofline axis)."""
        return self.useful_macs / max(1, self.weights_read)

    def roof_tops(self) -> float:
        """The roofline's bound at this run's operational intensity."""
        c = self.config
        return min(c.peak_ops, 2 * c.weight_bandwidth * self.intensity) / 1e12

    def as_dict(self) -> dict[str, object]:
        return {
            "preset": self.config.name,
            "mode": self.mode,
            "cycles": self.cycles,
            "seconds": self.seconds,
            "breakdown": dict(self.breakdown),
            "useful_macs": self.useful_macs,
            "array_macs": self.array_macs,
            "utilization": self.utilization,
            "tops": self.tops,
            "roof_tops": self.roof_tops(),
            "intensity_macs_per_weight_byte": self.intensity,
            "instructions": self.instructions,
            "bytes": {
                "host_read": self.host_read,
                "host_written": self.host_written,
                "weights_read": self.weights_read,
            },
        }

    def report(self) -> str:
        c = self.config
        lines = [
            f"TPU {c.name}: {c.rows}x{c.cols} {c.multiplier}, {c.clock_hz / 1e6:.0f} MHz, "
            f"{self.mode} timing",
            f"  cycles           {self.cycles:>14,d}   ({self.seconds * 1e6:,.2f} us)",
        ]
        for k in CATEGORIES:
            share = self.breakdown[k] / max(1, self.cycles)
            lines.append(f"    {LABELS[k]:<22} {self.breakdown[k]:>12,d}  {share:7.1%}")
        lines += [
            f"  useful MACs      {self.useful_macs:>14,d}   utilization {self.utilization:.1%}",
            f"  achieved         {self.tops:>14.3f} TOPS   (peak {c.peak_ops / 1e12:.2f}, roof at "
            f"this intensity {self.roof_tops():.2f})",
            f"  intensity        {self.intensity:>14.1f} MACs per weight byte (ridge "
            f"{c.ridge:.0f})",
            f"  bytes            host in {self.host_read:,d}, host out {self.host_written:,d}, "
            f"weights {self.weights_read:,d}",
            f"  instructions     {self.instructions:>14,d}",
        ]
        return "\n".join(lines)
