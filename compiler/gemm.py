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

K tiling: a B column block must fit a PMU (``Kt <= pmu_depth`` rows). A
larger K is split into ``T`` equal tiles of ``Kt`` (K padded to ``T * Kt``).
Tile ``t`` is the same dataflow over columns ``t*Kt .. (t+1)*Kt - 1`` of A
and rows of B (the same netlist, placement and routes; only the AGCUs'
addresses differ), writing its partial product ``C_t`` (int32) to a DRAM
region of its own. A last configuration, the *reduction*
(:func:`plan_reduce`), sums the ``T`` partials on the PCUs (``ADD`` with the
accumulator over the tiles) and writes C. The host runs the ``T + 1``
configurations back to back, loading the next one (deferred) while the
current one runs, so a switch costs a CSR write, not a load. The partials'
traffic (``2 T`` times C, less the final write) is real and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..hw.agcu import ELEM_INT8, ELEM_INT16, ELEM_INT32
from ..hw.params import FabricParams
from ..hw.pcu import Op
from ..sim.agcu_model import Pattern, agcu_config
from .bitstream import FabricConfig, encode
from .errors import DoesNotFit, DTypeError, ShapeError
from .netlist import Netlist
from .programs import PcuProgram, counter, pmu_stream

__all__ = ["GemmPlan", "plan_gemm", "compile_gemm", "CompiledGemm", "ReducePlan",
           "plan_reduce", "DTYPES"]

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
    dtype: str            # A's element type (and B's unless b_dtype is set)
    R: int                 # row groups
    G: int                 # column groups
    Mp: int
    Np: int
    Kp: int
    T: int = 1             # K tiles (Kp = T * Kt)
    b_dtype: str | None = None
    a_addr: int = 0
    b_addr: int = 0
    c_addr: int = 0
    partial_addr: int = 0  # T partial products (T > 1)
    netlist: Netlist = None
    programs: dict = field(default_factory=dict)      # tile 0's
    tile_programs: list = field(default_factory=list)  # per tile: the AGCU programs
    reduce: "ReducePlan | None" = None

    @property
    def Kt(self) -> int:
        return self.Kp // self.T

    def tile_dst(self, t: int) -> int:
        """Where tile t writes its (partial) product."""
        return self.c_addr if self.T == 1 else self.partial_addr + t * self.c_bytes

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
    def bdt(self) -> str:
        return self.b_dtype or self.dtype

    @property
    def esize(self) -> int:
        """Bytes per element of A."""
        return np.dtype(DTYPES[self.dtype][0]).itemsize

    @property
    def b_esize(self) -> int:
        return np.dtype(DTYPES[self.bdt][0]).itemsize

    @property
    def macs(self) -> int:
        return self.M * self.N * self.K

    @property
    def a_bytes(self) -> int:
        return self.Mp * self.Kp * self.esize

    @property
    def b_bytes(self) -> int:
        return self.Kp * self.Np * self.b_esize

    @property
    def c_bytes(self) -> int:
        return self.Mp * self.Np * 4

    def pad_a(self, a):
        out = np.zeros((self.Mp, self.Kp), dtype=DTYPES[self.dtype][0])
        out[:self.M, :self.K] = a
        return out

    def pad_b(self, b):
        out = np.zeros((self.Kp, self.Np), dtype=DTYPES[self.bdt][0])
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

    @property
    def dram_end(self) -> int:
        return self.c_addr + self.c_bytes

    def summary(self) -> str:
        tiles = (f", {self.T} K tiles of {self.Kt} + a reduction" if self.T > 1 else "")
        dt = self.dtype if self.bdt == self.dtype else f"{self.dtype} x {self.bdt}"
        return (f"GEMM {self.M}x{self.N}x{self.K} {dt} on {self.params.name}: "
                f"{self.R}x{self.G} PCU grid, padded {self.Mp}x{self.Np}x{self.Kp}, "
                f"{self.passes} pass(es) of {self.G * self.lanes} columns{tiles}")


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
              b_dtype: str | None = None, a_addr: int = 0x10000) -> GemmPlan:
    """Tile, lay out and program a GEMM (see the module docstring)."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ShapeError(f"GEMM {name} must be a positive integer, got {v!r}")
    for dt in (dtype, b_dtype or dtype):
        if dt not in DTYPES:
            raise DTypeError(f"GEMM operands must be one of {', '.join(DTYPES)}, not {dt!r} "
                         f"(the PCU multiplies {params.mul_width}-bit operands)")
    M, N, K = int(M), int(N), int(K)
    L = params.lanes
    R, G = _grid(params, M, N)
    # K tiles: a B column block (Kt rows) must fit a PMU
    depth = params.pmu_depth
    T = -(-_ceil(K, L) // depth)
    Kt = _ceil(-(-K // T), L)
    plan = GemmPlan(params, M, N, K, dtype, R, G, _ceil(M, R), _ceil(N, G * L), T * Kt, T=T,
                    b_dtype=b_dtype if b_dtype != dtype else None)
    for what, v in (("rows per group", plan.Mg), ("passes", plan.passes),
                    ("K vectors", plan.Kt), ("K tiles", plan.T)):
        if v > COUNT_MAX:
            raise DoesNotFit(f"GEMM {what} = {v} exceeds the 16-bit counters")
    plan.a_addr = a_addr
    plan.b_addr = _ceil(plan.a_addr + plan.a_bytes, 64)
    plan.partial_addr = _ceil(plan.b_addr + plan.b_bytes, 64)
    plan.c_addr = plan.partial_addr + (plan.T * plan.c_bytes if plan.T > 1 else 0)
    _program(plan)
    if plan.T > 1:
        plan.reduce = plan_reduce(params, plan.T, plan.Mp * plan.Np // L,
                                  src=plan.partial_addr, dst=plan.c_addr)
    return plan


def _program(plan: GemmPlan):
    p = plan.params
    R, G, Mg, Kt = plan.R, plan.G, plan.Mg, plan.Kt
    nl = Netlist()
    progs = {}

    # -- PCUs ------------------------------------------------------------------------------
    # one dot product per lane: B's row from the PMU, A's element broadcast
    pcu_prog = (PcuProgram(p, [counter(Kt), counter(Mg), counter(plan.passes)])
                .inputs(vec=[0], scal=[0])
                .stage(Op.MAC, a="r0", b="bc", c="acc", bc="s0", acc_level=1)
                .done(vec_out=(0, 1)))
    for g in range(R):
        for c in range(G):
            nl.add_unit(f"pcu{g}_{c}", "pcu", f"C[{g},{c}]")
            progs[f"pcu{g}_{c}"] = pcu_prog

    # -- B PMUs ----------------------------------------------------------------------------
    buf_lg = max(0, (Kt - 1).bit_length())
    nbuf = 2 if 2 << buf_lg <= p.pmu_depth else 1
    pmu_prog = {
        "en": 1, "nbuf_m1": nbuf - 1, "buf_lg": buf_lg,
        "wr": pmu_stream(p, [counter(Kt)], [1]),
        "rd": pmu_stream(p, [counter(Kt), counter(Mg)], [1, 0]),     # replayed per row
    }
    for c in range(G):
        nl.add_unit(f"pmuB{c}", "pmu", f"B[{c}]")
        progs[f"pmuB{c}"] = pmu_prog

    # -- AGCUs: A[g] and B[c] read streams, C[g, c] write streams -------------------------
    reads = [("A", g) for g in range(R)] + [("B", c) for c in range(G)]
    writers = [(g, c) for g in range(R) for c in range(G)]
    agcus = []
    for k in range(max(len(reads), len(writers))):
        rd = reads[k] if k < len(reads) else None
        wr = writers[k] if k < len(writers) else None
        name = f"agcu{k}"
        role = "/".join(x for x in (f"{rd[0]}[{rd[1]}]" if rd else "",
                                     f"C[{wr[0]},{wr[1]}]" if wr else "") if x)
        nl.add_unit(name, "agcu", role)
        agcus.append((name, rd, wr))
    plan.tile_programs = [_agcu_programs(plan, agcus, t) for t in range(plan.T)]
    progs.update(plan.tile_programs[0])

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


def _agcu_programs(plan: GemmPlan, agcus, t: int) -> dict:
    """The AGCU programs of K tile t: A columns and B rows ``t*Kt ..``, the
    product to ``plan.tile_dst(t)``."""
    p = plan.params
    L, G, Mg, Kp, Kt, Np = p.lanes, plan.G, plan.Mg, plan.Kp, plan.Kt, plan.Np
    es, elem = plan.esize, DTYPES[plan.dtype][1]
    k0 = t * Kt
    progs = {}
    for name, rd, wr in agcus:
        cfg_rd = cfg_wr = None
        scal = 0
        if rd and rd[0] == "A":
            g = rd[1]
            cfg_rd = Pattern(base=plan.a_addr + (g * Mg * Kp + k0) * es,
                             counts=(Kt // L, Mg, plan.passes), strides=(L * es, Kp * es, 0),
                             elem=elem)
            scal = 1
        elif rd:
            c = rd[1]
            # panel (pass * G + c) of the panel-major B, rows k0 .. k0 + Kt
            bs = plan.b_esize
            cfg_rd = Pattern(base=plan.b_addr + (c * Kp + k0) * L * bs, counts=(Kt, plan.passes),
                             strides=(L * bs, G * Kp * L * bs), elem=DTYPES[plan.bdt][1])
        if wr:
            g, c = wr
            cfg_wr = Pattern(base=plan.tile_dst(t) + (g * Mg * Np + c * L) * 4,
                             counts=(Mg, plan.passes), strides=(Np * 4, G * L * 4),
                             elem=ELEM_INT32)
        prog = agcu_config(read=cfg_rd, write=cfg_wr)
        prog["scal"] = scal
        progs[name] = prog
    return progs


@dataclass
class ReducePlan:
    """Sum ``T`` int32 partial products (each ``nvec`` vectors, one after the
    other from ``src``) into ``dst``: PCU ``u`` adds the tiles of its share of
    the vectors, ``ADD(R0, ACC)`` with the accumulator restarting at tile 0,
    and emits the sum after the last tile; its AGCU reads the share tile by
    tile interleaved (vector v of tile 0, 1, ..., T-1, then v + 1) and writes
    the sums."""
    params: FabricParams
    T: int
    nvec: int
    src: int
    dst: int
    shares: list                 # (first vector, vectors) per PCU
    netlist: Netlist = None
    programs: dict = field(default_factory=dict)


def plan_reduce(params: FabricParams, T: int, nvec: int, *, src: int, dst: int) -> ReducePlan:
    p = params
    L = p.lanes
    units = min(p.num_pcus, p.agcus)
    if units < 1:
        raise DoesNotFit(f"a reduction needs a PCU and an AGCU; preset {p.name!r} has "
                         f"{p.num_pcus} PCUs and {p.agcus} AGCUs")
    per = -(-nvec // units)
    shares = [(u * per, min(per, nvec - u * per)) for u in range(units) if u * per < nvec]
    for _, n in shares:
        if n > COUNT_MAX or T > COUNT_MAX:
            raise DoesNotFit(f"a reduction share of {n} vectors over {T} tiles exceeds the "
                             f"16-bit counters")
    vb = 4 * L
    nl = Netlist()
    progs = {}
    for u, (v0, n) in enumerate(shares):
        pcu, agcu = f"pcu{u}", f"agcu{u}"
        nl.add_unit(pcu, "pcu", f"sum[{u}]")
        nl.add_unit(agcu, "agcu", f"P[{u}]/C[{u}]")
        progs[pcu] = (PcuProgram(p, [counter(T), counter(n)]).inputs(vec=[0])
                      .stage(Op.ADD, a="r0", b="acc", acc_level=1)
                      .done(vec_out=(0, 1)))
        prog = agcu_config(read=Pattern(base=src + v0 * vb, counts=(T, n), strides=(nvec * vb, vb)),
                           write=Pattern(base=dst + v0 * vb, counts=(n,), strides=(vb,)))
        prog["scal"] = 0
        progs[agcu] = prog
        nl.connect(f"P{u}", (agcu, "vec", 0), (pcu, "vec", 0))
        nl.connect(f"S{u}", (pcu, "vec", 0), (agcu, "vec", 0))
    return ReducePlan(p, T, nvec, src, dst, shares, nl, progs)


@dataclass
class CompiledGemm:
    """A compiled GEMM: one bitstream per K tile (``tiles``; ``bitstream`` is
    the first) and, with K tiles, the reduction's (``reduce_bitstream``)."""
    plan: GemmPlan
    placement: object
    routing: object
    config: FabricConfig
    bitstream: bytes
    compile_seconds: float
    tiles: list = field(default_factory=list)
    reduce_bitstream: bytes | None = None
    reduce_placement: object = None
    reduce_routing: object = None

    @property
    def bitstreams(self) -> list:
        """Every configuration, in the order the host runs them."""
        return list(self.tiles) + ([self.reduce_bitstream] if self.reduce_bitstream else [])


def compile_gemm(params: FabricParams, M: int, N: int, K: int, dtype: str = "int8", *,
                 b_dtype: str | None = None, a_addr: int = 0x10000,
                 seed: int = 0) -> CompiledGemm:
    """Plan, place, route and encode a GEMM (and, with K tiles, its reduction)."""
    import time

    from .pathfinder import route
    from .place import place

    t0 = time.perf_counter()
    plan = plan_gemm(params, M, N, K, dtype, b_dtype=b_dtype, a_addr=a_addr)
    placement = place(params, plan.netlist, seed=seed)
    routing = route(placement, programs=plan.programs)
    tiles = []
    for t, agcu_progs in enumerate(plan.tile_programs):
        if t == 0:
            tiles.append(encode(routing.config))
            continue
        config = routing.config.copy()
        for unit, value in agcu_progs.items():
            config.set(placement.config_unit(unit), value)
        tiles.append(encode(config))
    cg = CompiledGemm(plan, placement, routing, routing.config, tiles[0], 0.0, tiles)
    if plan.reduce is not None:
        cg.reduce_placement = place(params, plan.reduce.netlist, seed=seed)
        cg.reduce_routing = route(cg.reduce_placement, programs=plan.reduce.programs)
        cg.reduce_bitstream = encode(cg.reduce_routing.config)
    cg.compile_seconds = time.perf_counter() - t0
    return cg
