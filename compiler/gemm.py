"""GEMM lowering: C = A @ B (int8/int16 operands, int32 result) onto every PCU.

The mapping (an outer-product, output-stationary dataflow):

* The PCUs form an ``R x G`` grid: row group ``g`` owns rows
  ``g*Mg .. (g+1)*Mg - 1`` of C, column group ``c`` owns ``lanes`` columns of
  every *pass* (a pass covers ``G * lanes`` columns of C).
* PCU ``(g, c)`` lane ``l`` accumulates ``C[i, j] = sum_k A[i, k] * B[k, j]``
  for ``j = pass*G*lanes + c*lanes + l``: stage 0 is ``MAC(R0, BC, ACC)``
  with ``R0`` the B vector ``B[k, j..j+lanes)`` and ``BC`` the scalar
  ``A[i, k]``; the accumulator restarts at ``k = 0`` and the vector of C
  leaves at ``k = Kp - 1``. One MAC per lane per cycle: the PCU fires every
  cycle while both operands stream.
* ``A`` streams from DRAM: AGCU ``A[g]`` reads row group g's rows (int8/int16
  elements, sign-extended) once per pass and its scalar port serializes them
  into ``A[i, k]`` scalars, multicast on the scalar network to the G PCUs of
  the row group.
* ``B`` goes through PMUs. It lies in DRAM panel-major (``pack_b``: each
  ``lanes``-column panel contiguous). AGCU ``B[c]`` reads the ``Kp x lanes`` column block
  of column group c for each pass into PMU ``B[c]`` (double-buffered when two
  blocks fit, so the next pass's block loads while this one is used); the PMU
  replays the block once per row of the group, multicast on the vector network
  to the R PCUs of the column group.
* Each PCU's C vectors go to an AGCU write stream of their own (int32).

Shapes are padded with zeros by the host (K to a multiple of ``lanes``, N to a
multiple of ``G * lanes``, M to a multiple of R); padded rows and columns of
C are computed and discarded, and their traffic is counted in the off-chip
figures (it lowers the roofline fraction, never the bound).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..hw.agcu import ELEM_INT8, ELEM_INT16, ELEM_INT32
from ..hw.params import FabricParams
from ..hw.pcu import AccInit, Op, bc_code, src_code
from ..sim.agcu_model import Pattern, agcu_config
from .bitstream import FabricConfig, encode
from .errors import DoesNotFit, DTypeError, ShapeError
from .netlist import Netlist

__all__ = ["GemmPlan", "plan_gemm", "compile_gemm", "CompiledGemm", "DTYPES"]

DTYPES = {"int8": (np.int8, ELEM_INT8), "int16": (np.int16, ELEM_INT16)}
COUNT_MAX = (1 << 16) - 1


def _ceil(a, b):
    return -(-a // b) * b


@dataclass
class GemmPlan:
    params: FabricParams
    M: int
    N: int
    K: int
    dtype: str
    R: int                 # row groups
    G: int                 # column groups
    Mp: int
    Np: int
    Kp: int
    a_addr: int = 0
    b_addr: int = 0
    c_addr: int = 0
    netlist: Netlist = None
    programs: dict = field(default_factory=dict)

    @property
    def lanes(self) -> int:
        return self.params.lanes

    @property
    def Mg(self) -> int:
        return self.Mp // self.R

    @property
    def passes(self) -> int:
        return self.Np // (self.G * self.lanes)

    @property
    def esize(self) -> int:
        return np.dtype(DTYPES[self.dtype][0]).itemsize

    @property
    def macs(self) -> int:
        return self.M * self.N * self.K

    @property
    def a_bytes(self) -> int:
        return self.Mp * self.Kp * self.esize

    @property
    def b_bytes(self) -> int:
        return self.Kp * self.Np * self.esize

    @property
    def c_bytes(self) -> int:
        return self.Mp * self.Np * 4

    def pad_a(self, a):
        out = np.zeros((self.Mp, self.Kp), dtype=DTYPES[self.dtype][0])
        out[:self.M, :self.K] = a
        return out

    def pad_b(self, b):
        out = np.zeros((self.Kp, self.Np), dtype=DTYPES[self.dtype][0])
        out[:self.K, :self.N] = b
        return out

    def pack_b(self, b):
        """B as it lies in DRAM: zero-padded to (Kp, Np), then panel-major,
        ``(Np / lanes, Kp, lanes)``: the ``lanes`` columns a PCU lane group
        uses are one contiguous run, so an AGCU fetches a column block in
        full bursts (row-major, each vector would be a burst of its own)."""
        L = self.lanes
        return np.ascontiguousarray(self.pad_b(b).reshape(self.Kp, self.Np // L, L)
                                    .transpose(1, 0, 2))

    def crop_c(self, c):
        return np.asarray(c).reshape(self.Mp, self.Np)[:self.M, :self.N]

    def summary(self) -> str:
        return (f"GEMM {self.M}x{self.N}x{self.K} {self.dtype} on {self.params.name}: "
                f"{self.R}x{self.G} PCU grid, padded {self.Mp}x{self.Np}x{self.Kp}, "
                f"{self.passes} pass(es) of {self.G * self.lanes} columns")


def _grid(params: FabricParams, M: int, N: int):
    """(R, G) with R*G = every PCU, G B-PMUs, R+G read AGCUs and R*G write
    AGCUs available; the one with the least padded work, then the fewest A
    re-reads (largest G)."""
    n_pcu, n_pmu, n_agcu = params.num_pcus, params.num_pmus, params.agcus
    best = None
    for G in range(1, n_pcu + 1):
        if n_pcu % G:
            continue
        R = n_pcu // G
        if G > n_pmu or R + G > n_agcu or n_pcu > n_agcu:
            continue
        work = _ceil(M, R) * _ceil(N, G * params.lanes)
        key = (work, -G)
        if best is None or key < best[0]:
            best = (key, R, G)
    if best is None:
        raise DoesNotFit(
            f"GEMM needs, for an R x G grid of all {n_pcu} PCUs, G PMUs, R + G AGCU read "
            f"streams and {n_pcu} AGCU write streams; preset {params.name!r} has {n_pmu} PMUs "
            f"and {n_agcu} AGCUs", asked={"pcu": n_pcu, "agcu": n_pcu + 1},
            available={"pmu": n_pmu, "agcu": n_agcu})
    return best[1], best[2]


def plan_gemm(params: FabricParams, M: int, N: int, K: int, dtype: str = "int8", *,
              a_addr: int = 0x10000) -> GemmPlan:
    """Tile, lay out and program a GEMM (see the module docstring)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ShapeError(f"GEMM {name} must be a positive integer, got {v!r}")
    if dtype not in DTYPES:
        raise DTypeError(f"GEMM operands must be one of {', '.join(DTYPES)}, not {dtype!r} "
                         f"(the PCU multiplies {params.mul_width}-bit operands)")
    M, N, K = int(M), int(N), int(K)
    L = params.lanes
    R, G = _grid(params, M, N)
    plan = GemmPlan(params, M, N, K, dtype, R, G, _ceil(M, R), _ceil(N, G * L), _ceil(K, L))
    depth = params.pmu_depth
    if plan.Kp > depth:
        raise DoesNotFit(f"GEMM K={K} (padded to {plan.Kp}) exceeds the {depth} rows of a PMU "
                         f"on preset {params.name!r}; K tiling is not supported yet",
                         asked={"pmu_rows": plan.Kp}, available={"pmu_rows": depth})
    for what, v in (("rows per group", plan.Mg), ("passes", plan.passes),
                    ("K vectors", plan.Kp)):
        if v > COUNT_MAX:
            raise DoesNotFit(f"GEMM {what} = {v} exceeds the 16-bit counters")
    plan.a_addr = a_addr
    plan.b_addr = _ceil(plan.a_addr + plan.a_bytes, 64)
    plan.c_addr = _ceil(plan.b_addr + plan.b_bytes, 64)
    _program(plan)
    return plan


def _program(plan: GemmPlan):
    p = plan.params
    L, R, G, Mg, Kp, Np = p.lanes, plan.R, plan.G, plan.Mg, plan.Kp, plan.Np
    es, elem = plan.esize, DTYPES[plan.dtype][1]
    nl = Netlist()
    progs = {}

    # -- PCUs ------------------------------------------------------------------------------
    nop = {"op": Op.NOP}
    mac = {"op": Op.MAC, "a": src_code(p, "r0"), "b": src_code(p, "bc"),
           "c": src_code(p, "acc"), "dst": 0, "bc": bc_code(p, "s0"),
           "acc_level": 1, "acc_init": AccInit.ZERO}
    pcu_prog = {
        "en": 1,
        "counters": [{"start": 0, "stop": Kp, "stride": 1},
                     {"start": 0, "stop": Mg, "stride": 1},
                     {"start": 0, "stop": plan.passes, "stride": 1}][:p.counters],
        "vec_in": [{"en": 1, "level": 0}],
        "scal_in": [{"en": 1, "level": 0}],
        "stages": [mac] + [nop] * (p.stages - 1),
        "vec_out": [{"en": 1, "src": 0, "level": 1, "last": 0}],
    }
    for g in range(R):
        for c in range(G):
            nl.add_unit(f"pcu{g}_{c}", "pcu", f"C[{g},{c}]")
            progs[f"pcu{g}_{c}"] = pcu_prog

    # -- B PMUs ----------------------------------------------------------------------------
    buf_lg = max(0, (Kp - 1).bit_length())
    nbuf = 2 if 2 << buf_lg <= p.pmu_depth else 1
    zero = {"start": 0, "stop": 1, "stride": 1}
    ctr = lambda n: {"start": 0, "stop": n, "stride": 1}
    pad = lambda lst: (lst + [zero] * p.counters)[:p.counters]
    padz = lambda lst: (lst + [0] * p.counters)[:p.counters]
    pmu_prog = {
        "en": 1, "nbuf_m1": nbuf - 1, "buf_lg": buf_lg,
        "wr": {"en": 1, "scalar": 0, "port": 0, "counters": pad([ctr(Kp)]),
               "astride": padz([1]), "rstride": padz([]), "base": 0, "rbase": 0,
               "lstride": 0, "last": 0},
        "rd": {"en": 1, "scalar": 0, "port": 0, "counters": pad([ctr(Kp), ctr(Mg)]),
               "astride": padz([1, 0]), "rstride": padz([]), "base": 0, "rbase": 0,
               "lstride": 0, "last": 0},
    }
    for c in range(G):
        nl.add_unit(f"pmuB{c}", "pmu", f"B[{c}]")
        progs[f"pmuB{c}"] = pmu_prog

    # -- AGCUs -------------------------------------------------------------------------------
    reads = {}
    for g in range(R):
        reads[f"agcuA{g}"] = ("A", g)
    for c in range(G):
        reads[f"agcuB{c}"] = ("B", c)
    writers = [(g, c) for g in range(R) for c in range(G)]
    names = list(reads)
    n_agcu = max(len(names), len(writers))
    agcus = []
    for k in range(n_agcu):
        rd = reads[names[k]] if k < len(names) else None
        wr = writers[k] if k < len(writers) else None
        name = f"agcu{k}"
        role = "/".join(x for x in (f"{rd[0]}[{rd[1]}]" if rd else "",
                                     f"C[{wr[0]},{wr[1]}]" if wr else "") if x)
        nl.add_unit(name, "agcu", role)
        cfg_rd = cfg_wr = None
        scal = 0
        if rd and rd[0] == "A":
            g = rd[1]
            cfg_rd = Pattern(base=plan.a_addr + g * Mg * Kp * es, counts=(Kp // L, Mg, plan.passes),
                             strides=(L * es, Kp * es, 0), elem=elem)
            scal = 1
        elif rd:
            c = rd[1]
            # panel (pass * G + c) of the panel-major B: Kp contiguous vectors
            cfg_rd = Pattern(base=plan.b_addr + c * Kp * L * es, counts=(Kp, plan.passes),
                             strides=(L * es, G * Kp * L * es), elem=elem)
        if wr:
            g, c = wr
            cfg_wr = Pattern(base=plan.c_addr + (g * Mg * Np + c * L) * 4,
                             counts=(Mg, plan.passes), strides=(Np * 4, G * L * 4),
                             elem=ELEM_INT32)
        prog = agcu_config(read=cfg_rd, write=cfg_wr)
        prog["scal"] = scal
        progs[name] = prog
        agcus.append((name, rd, wr))

    # -- nets ---------------------------------------------------------------------------------
    for name, rd, wr in agcus:
        if rd and rd[0] == "A":
            g = rd[1]
            nl.connect(f"A{g}", (name, "scal", 0), *[(f"pcu{g}_{c}", "scal", 0) for c in range(G)])
        elif rd:
            c = rd[1]
            nl.connect(f"Bload{c}", (name, "vec", 0), (f"pmuB{c}", "vec", 0))
        if wr:
            g, c = wr
            nl.connect(f"C{g}_{c}", (f"pcu{g}_{c}", "vec", 0), (name, "vec", 0))
    for c in range(G):
        nl.connect(f"B{c}", (f"pmuB{c}", "vec", 0), *[(f"pcu{g}_{c}", "vec", 0) for g in range(R)])
    plan.netlist = nl
    plan.programs = progs


@dataclass
class CompiledGemm:
    plan: GemmPlan
    placement: object
    routing: object
    config: FabricConfig
    bitstream: bytes
    compile_seconds: float


def compile_gemm(params: FabricParams, M: int, N: int, K: int, dtype: str = "int8", *,
                 seed: int = 0) -> CompiledGemm:
    """Plan, place, route and encode a GEMM."""
    import time

    from .pathfinder import route
    from .place import place

    t0 = time.perf_counter()
    plan = plan_gemm(params, M, N, K, dtype)
    placement = place(params, plan.netlist, seed=seed)
    routing = route(placement, programs=plan.programs)
    bitstream = encode(routing.config)
    return CompiledGemm(plan, placement, routing, routing.config, bitstream,
                        time.perf_counter() - t0)
