"""FabricParams: the one source of truth for the size and shape of a Tessera fabric.

Every other part (RTL generators, compiler, bitstream format, golden models,
reports) takes a :class:`FabricParams` and derives what it needs from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

__all__ = ["FabricParams", "PRESETS", "preset"]


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


@dataclass(frozen=True)
class FabricParams:
    """Parameters of a Tessera fabric.

    The grid holds ``rows x cols`` tiles; each tile is a switch plus one unit
    slot. Unit slots alternate PCU / PMU in a checkerboard (as in Plasticine's
    interleaved compute/memory array). AGCUs sit outside the grid on the west
    (then east) edge ports.
    """

    name: str = "custom"
    rows: int = 2
    cols: int = 2
    lanes: int = 4
    stages: int = 4
    word_width: int = 32
    mul_width: int = 16
    pmu_banks: int = 4
    pmu_depth: int = 256
    fifo_depth: int = 4
    counters: int = 3
    agcus: int = 2
    # Links per switch side per network ("tracks").
    vec_tracks: int = 2
    scal_tracks: int = 2
    ctrl_tracks: int = 2
    # Ports of every unit slot, per network and direction.
    unit_vec_in: int = 2
    unit_vec_out: int = 1
    unit_scal_in: int = 2
    unit_scal_out: int = 1
    unit_ctrl_in: int = 2
    unit_ctrl_out: int = 2
    # Simulated DRAM (ARCHITECTURE.md: 16 B/cycle, 64 cycles read latency).
    dram_latency: int = 64
    dram_bytes_per_cycle: int = 16
    # Target clock for synthesis constraints.
    clock_mhz: float = 100.0
    # PCU (hw/pcu.py). Stages holding a mul_width x mul_width multiplier (MUL,
    # MAC, QMUL; one DSP per lane each); negative indices count from the last
    # stage. A multiplier stage takes three cycles, the others two.
    pcu_mul_stages: tuple = (0,)
    # The special-function tail (exp2, reciprocal; one DSP per lane).
    pcu_sfu: bool = True
    # The online-softmax state update: the RSA op (ACC >> b) + a and acc_a
    # (an accumulator that keeps operand a: a delay). About 100 ECP5 LUTs
    # per lane-stage (docs/area.md); the fused attention kernel needs them.
    pcu_rescale: bool = True
    # Pipeline registers per lane carried from stage to stage (1..4).
    pcu_regs: int = 4

    _POSITIVE = (
        "rows", "cols", "lanes", "stages", "word_width", "mul_width", "pmu_banks",
        "pmu_depth", "fifo_depth", "counters", "vec_tracks", "scal_tracks",
        "ctrl_tracks", "unit_vec_in", "unit_vec_out", "unit_scal_in",
        "unit_scal_out", "unit_ctrl_in", "unit_ctrl_out", "dram_latency",
        "dram_bytes_per_cycle",
    )

    def __post_init__(self):
        for name in self._POSITIVE:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"FabricParams.{name} must be an int, not {value!r}")
            if value < 1:
                raise ValueError(f"FabricParams.{name} must be >= 1, got {value}")
        if not isinstance(self.agcus, int) or self.agcus < 0:
            raise ValueError(f"FabricParams.agcus must be an int >= 0, got {self.agcus!r}")
        if self.agcus > 2 * self.rows:
            raise ValueError(
                f"FabricParams.agcus={self.agcus} exceeds the {2 * self.rows} west/east edge "
                f"rows of a {self.rows}-row grid")
        if self.word_width != 32:
            raise ValueError(f"FabricParams.word_width must be 32 (the config and link "
                             f"contracts use 32-bit words), got {self.word_width}")
        if self.mul_width > self.word_width:
            raise ValueError(f"FabricParams.mul_width={self.mul_width} exceeds "
                             f"word_width={self.word_width}")
        if self.pmu_banks != self.lanes:
            raise ValueError(f"FabricParams.pmu_banks={self.pmu_banks} must equal "
                             f"lanes={self.lanes} (one bank per lane)")
        if self.fifo_depth < 3:
            # Amaranth's SyncFIFOBuffered moves only one word every other
            # cycle at depth 1 or 2 (found by the formal proofs).
            raise ValueError(f"FabricParams.fifo_depth must be >= 3 for unit inputs to take one "
                             f"word per cycle, got {self.fifo_depth}")
        if not _is_pow2(self.pmu_depth):
            raise ValueError(f"FabricParams.pmu_depth must be a power of two, got {self.pmu_depth}")
        if not _is_pow2(self.dram_bytes_per_cycle):
            raise ValueError(f"FabricParams.dram_bytes_per_cycle must be a power of two, "
                             f"got {self.dram_bytes_per_cycle}")
        if self.rows * self.cols > 4096:
            raise ValueError(f"FabricParams grid {self.rows}x{self.cols} is larger than 4096 tiles")
        if not isinstance(self.clock_mhz, (int, float)) or self.clock_mhz <= 0:
            raise ValueError(f"FabricParams.clock_mhz must be > 0, got {self.clock_mhz!r}")
        if isinstance(self.pcu_mul_stages, list):
            object.__setattr__(self, "pcu_mul_stages", tuple(self.pcu_mul_stages))
        if not isinstance(self.pcu_mul_stages, tuple) or not all(
                isinstance(k, int) and not isinstance(k, bool) for k in self.pcu_mul_stages):
            raise TypeError(f"FabricParams.pcu_mul_stages must be a tuple of stage indices, "
                            f"not {self.pcu_mul_stages!r}")
        for k in self.pcu_mul_stages:
            if not -self.stages <= k < self.stages:
                raise ValueError(f"FabricParams.pcu_mul_stages has stage {k}, outside the "
                                 f"{self.stages} stages")
        if len({k % self.stages for k in self.pcu_mul_stages}) != len(self.pcu_mul_stages):
            raise ValueError(f"FabricParams.pcu_mul_stages names a stage twice: "
                             f"{self.pcu_mul_stages}")
        if not isinstance(self.pcu_sfu, bool):
            raise TypeError(f"FabricParams.pcu_sfu must be a bool, not {self.pcu_sfu!r}")
        if not isinstance(self.pcu_rescale, bool):
            raise TypeError(f"FabricParams.pcu_rescale must be a bool, not "
                            f"{self.pcu_rescale!r}")
        if (not isinstance(self.pcu_regs, int) or isinstance(self.pcu_regs, bool)
                or not 1 <= self.pcu_regs <= 4):
            raise ValueError(f"FabricParams.pcu_regs must be an int in 1..4, got {self.pcu_regs!r}")

    # -- derived -------------------------------------------------------------
    @property
    def tiles(self) -> int:
        return self.rows * self.cols

    def unit_kind(self, row: int, col: int) -> str:
        """Kind of the unit in tile (row, col): 'pcu' or 'pmu' in a checkerboard."""
        return "pcu" if (row + col) % 2 == 0 else "pmu"

    @property
    def config_beat_words(self) -> int:
        """32-bit words per beat of the memory path (and of the config bus)."""
        return max(1, self.dram_bytes_per_cycle // 4)

    @property
    def num_pcus(self) -> int:
        return sum(self.unit_kind(r, c) == "pcu" for r in range(self.rows) for c in range(self.cols))

    @property
    def num_pmus(self) -> int:
        return self.tiles - self.num_pcus

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "FabricParams":
        return dataclasses.replace(self, **changes)

    @property
    def hash32(self) -> int:
        """32-bit hash of every parameter but the name; goes into the bitstream header."""
        d = self.to_dict()
        d.pop("name")
        blob = json.dumps(d, sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")

    @property
    def digest(self) -> str:
        """Long hash used to key simulator model caches."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


PRESETS: dict[str, FabricParams] = {
    "tiny": FabricParams(name="tiny", rows=1, cols=2, lanes=4, stages=4, pmu_banks=4,
                         pmu_depth=256, agcus=2, vec_tracks=2, scal_tracks=1, ctrl_tracks=1,
                         # iCE40 UP5K: 4 of its 8 DSPs, no special functions.
                         pcu_mul_stages=(0,), pcu_sfu=False, pcu_regs=2,
                         pcu_rescale=False),
    # One vector track per side on the larger grids: a two-entry vector hop per
    # side output is what fills an ECP5 (see docs/architecture.md, Area).
    # `small` is sized to place and route on an LFE5U-85F (docs/area.md); with
    # every PCU feature it needed 94k LUTs (113%). Measured per block (Yosys):
    # one scalar and one control track per side (a GEMM needs no more) make a
    # switch 6.8k -> 4.6k LUTs; one multiplier stage and three registers make a
    # PCU 30.3k -> 25.7k, no SFU tail 25.7k -> 20.2k (the SFU's 4 lanes are
    # 5.5k LUTs, 4 DSPs and 4 BRAMs), two registers 20.2k -> 19.0k. With three
    # registers the fabric was 67.6k LUTs (80%) and router2 stalled at 22k
    # overused wires. Tests of the second multiplier stage, the third and
    # fourth registers and the SFU use an explicit FabricParams
    # (tests/unit/test_pcu.py: FULL).
    "small": FabricParams(name="small", rows=2, cols=2, lanes=4, stages=4, pmu_banks=4,
                          pmu_depth=256, agcus=4, vec_tracks=1, scal_tracks=1,
                          ctrl_tracks=1,
                          pcu_mul_stages=(0,), pcu_sfu=False, pcu_regs=2,
                          pcu_rescale=False),
    "default": FabricParams(name="default", rows=4, cols=4, lanes=8, stages=6, pmu_banks=8,
                            pmu_depth=1024, agcus=8, vec_tracks=1,
                            # ECP5-85: 8 PCUs x 8 lanes x (1 multiplier + 1 SFU) = 128 of
                            # 156 DSPs
                            pcu_mul_stages=(0,), pcu_sfu=True, pcu_regs=3),
    "plasticine": FabricParams(name="plasticine", rows=8, cols=16, lanes=16, stages=6,
                               pmu_banks=16, pmu_depth=4096, agcus=16,
                               pcu_mul_stages=(0, 3), pcu_sfu=True, pcu_regs=4),
}


def preset(name: str) -> FabricParams:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
