"""Attention lowering (issue 7): the unfused baseline on the fabric.

``out = softmax(Q K^T / sqrt(d)) V`` in the fixed-point formats of
:mod:`.attention_model` (``docs/attention.md``), as four configurations that
the host runs back to back (:class:`~tessera.sim.host.ConfigSequence`); every
intermediate goes through DRAM:

1. **Scores**: :func:`~.gemm.compile_gemm` ``S = Q K^T`` (int8 x int8 ->
   int32). The host lays K out as the GEMM's B (``K^T``, panel-major).
2. **Softmax** (:func:`plan_softmax`), one row of S at a time, read once:

   ====  =========================================================  =======
   unit  program (per vector of 8 keys)                             steps
   ====  =========================================================  =======
   X1    ``ADD(s, 2**(rs-1))``, ``SHR rs`` -> s16                   2
   X2    ``QMUL(s16, C, qs)`` -> t; key index ``ADD(LANE, key       3, 4
         base)``, ``SUB row`` (causal), ``LT limit``, ``SEL(t,
         T_MASK)``: masked keys (causal, and the padding past M)
   X3a   butterfly MAX (3 stages) -> block max; ``MAX`` with the    5, 6
         accumulator (INT_MIN at each row) -> T; ``AND 0xFFFF0000``
         -> ``m << 16``, one scalar per row
   PMU   holds the row's t vectors (double-buffered: row i+1 is
         written while row i is read) until m is known
   X3b   ``SUB(t, m << 16)``, tail ``EXP2`` (shift 13) -> p         8, 9
   X4    butterfly ADD -> block sum; ``ADD`` with the accumulator   10
         (0 at each row) -> l, one vector per row (every lane l)
   ====  =========================================================  =======

   p is written as int16 P (the A operand of step 3, in its layout); l as
   one int32 vector per row.
3. **Values**: ``O = P V`` (int16 x int8 -> int32).
4. **Normalize** (:func:`plan_normalize`), steps 12-16 per row:

   ====  =========================================================
   unit  program
   ====  =========================================================
   G     lane i: ``SHL(2**15, LANE)`` -> threshold, ``LT(l, thr)``,
         butterfly ADD -> u = #{l < 2**(15+i)}, ``SUB(8, u)`` -> c
         (one scalar per row)
   H     per vector of o: ``PASS c``, ``SHR(l, c)`` -> lam, tail
         ``RECIP`` (shift 11) -> r (one scalar per row);
         ``ADD(c, 6)``, ``SHR(o, c+6)``, ``ADD 1``, ``SHR 1`` -> on
   I     ``QMUL(on, r, 12)`` -> int16 Q7.8, written to DRAM
   ====  =========================================================

The result equals :func:`~.attention_model.attention_unfused_fixed` bit for
bit. The leading-one detector uses one lane per threshold, so the head of
the pipeline needs ``lanes == 8`` (the default preset).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..hw.agcu import ELEM_INT8, ELEM_INT16
from ..hw.params import FabricParams
from ..hw.pcu import AccInit, Op
from ..hw.sfu import SFU_EXP2, SFU_RECIP
from ..sim.agcu_model import Pattern, agcu_config
from .attention_model import (HEAD_DIMS, MAX_DELTA, MAX_LEN, NORM_BASE, NORM_LANES,
                              OUT_NARROW, AttentionFormats)
from .bitstream import encode
from .errors import DoesNotFit, ShapeError
from .gemm import CompiledGemm, compile_gemm
from .netlist import Netlist
from .programs import PcuProgram, counter, pad_zeros, pmu_stream

__all__ = ["Kernel", "plan_softmax", "plan_normalize", "UnfusedAttention",
           "compile_attention_unfused", "check_attention_shape", "plan_fused",
           "FusedAttention", "compile_attention_fused", "compile_attention_fused_heads",
           "fused_heads_per_config", "resident_kv"]



def _ceil(a, b):
    return -(-a // b) * b


def check_attention_shape(N: int, M: int, d: int, causal: bool) -> None:
    for name, v in (("seq (N)", N), ("kv (M)", M), ("dim (d)", d)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ShapeError(f"attention {name} must be a positive integer, got {v!r}")
    if d not in HEAD_DIMS:
        raise ShapeError(f"attention head dim d={d} is not supported; use one of "
                         f"{', '.join(map(str, HEAD_DIMS))}")
    for name, v in (("seq (N)", N), ("kv (M)", M)):
        if v > MAX_LEN:
            raise ShapeError(f"attention {name} = {v} exceeds {MAX_LEN}")
    if causal and M < N:
        raise ShapeError(f"causal attention with N={N} queries and M={M} < N keys leaves the "
                         f"first {N - M} rows without a visible key")


@dataclass
class Kernel:
    """One configuration's netlist and unit programs (logical names)."""
    name: str
    netlist: Netlist
    programs: dict


def _need_lanes(p: FabricParams):
    if p.lanes != NORM_LANES:
        raise DoesNotFit(f"attention's softmax and normalization use {NORM_LANES} lanes (one "
                         f"per leading-one threshold, 3-stage butterflies); preset {p.name!r} "
                         f"has {p.lanes}")
    if p.stages < 6 or p.pcu_regs < 3 or p.unit_vec_in < 2:
        raise DoesNotFit(f"attention needs PCUs of >= 6 stages, 3 registers and 2 vector "
                         f"inputs; preset {p.name!r} has {p.stages}, {p.pcu_regs}, "
                         f"{p.unit_vec_in}")


def _narrow(prog: PcuProgram, fm: AttentionFormats) -> PcuProgram:
    """Step 2 on register 0: ``ADD 2**(rs-1)``, ``SHR rs`` -> s16."""
    return (prog.stage(Op.ADD, a="r0", b="bc", const=(1 << fm.rs) >> 1)
            .stage(Op.SHR, a="r0", b="bc", const=fm.rs))


def _running_max(prog: PcuProgram) -> PcuProgram:
    """Steps 5-6 from the t vector in register 0, into register 1: butterfly
    MAX over the lanes, MAX with the accumulator (the row's running max T,
    INT_MIN at each row's first block), ``AND 0xFFFF0000`` -> ``m << 16``."""
    return (prog.stage(Op.MAX, a="r0", b="xl", dst=1)
            .stage(Op.MAX, a="r1", b="xl", dst=1)
            .stage(Op.MAX, a="r1", b="xl", dst=1)
            .stage(Op.MAX, a="r1", b="acc", dst=1, acc_level=1, acc_init=AccInit.MIN)
            .stage(Op.AND, a="r1", b="bc", const=0xFFFF_0000, dst=1))


def _logits_program(p: FabricParams, fm: AttentionFormats, *, N: int, M: int,
                    causal: bool) -> dict:
    """Steps 3-4 on a vector of s16 per block of keys, rows in order: t, and
    T_MASK for the keys a row cannot see (causal, and the padding past M)."""
    x2 = PcuProgram(p, [counter(_ceil(M, p.lanes), p.lanes), counter(N)]).inputs(vec=[0])
    x2.stage(Op.QMUL, a="r0", b="bc", const=fm.C, shift=fm.qs)
    x2.stage(Op.ADD, a="lane", b="bc", bc="c0", dst=1)               # key index j
    if causal:
        # visible iff j <= i + M - N, i.e. j - i < M - N + 1 (also masks j >= M)
        x2.stage(Op.SUB, a="r1", b="bc", bc="c1", dst=1)
        limit = M - N + 1
    else:
        x2.stage(Op.NOP)
        limit = M
    x2.stage(Op.LT, a="r1", b="bc", const=limit, dst=1)
    x2.stage(Op.SEL, a="r0", b="bc", c="r1", const=fm.t_mask)
    return x2.done(vec_out=(0, 0))


def _normalize_programs(p: FabricParams, fm: AttentionFormats, counters: list, *,
                        l_scalar: bool) -> tuple:
    """G, H and I of steps 12-16 (module docstring). Unfused: one l vector
    (every lane l) per row, c and r held for the row's ``counters[0]`` vectors
    of o. Fused (`l_scalar`): l, c and r arrive once per vector of o, l as a
    scalar."""
    lvl = 0 if l_scalar else 1
    g = PcuProgram(p, counters if l_scalar else counters[1:])
    g = g.inputs(scal=[0]) if l_scalar else g.inputs(vec=[0])
    g = (g.stage(Op.SHL, a="bc", b="lane", const=1 << NORM_BASE, dst=1)   # 2**(15 + lane)
         .stage(Op.LT, a="bc" if l_scalar else "r0", b="r1", bc="s0" if l_scalar else "const",
                dst=1)                                                    # l < threshold
         .stage(Op.ADD, a="r1", b="xl", dst=1)
         .stage(Op.ADD, a="r1", b="xl", dst=1)
         .stage(Op.ADD, a="r1", b="xl", dst=1)
         .stage(Op.SUB, a="bc", b="r1", const=NORM_LANES, dst=1)          # c
         .done(scal_out=(1, 0, 0)))
    h = PcuProgram(p, counters)
    h = h.inputs(vec=[0], scal=[0, 0]) if l_scalar else h.inputs(vec=[0, 1], scal=[1])
    h.stage(Op.PASS, a="bc", bc="s0", dst=2)                               # c
    if l_scalar:
        h.stage(Op.SHR, a="bc", b="r2", bc="s1", dst=1)                    # lam = l >> c
    else:
        h.stage(Op.SHR, a="r1", b="r2", dst=1)
    h = (h.stage(Op.ADD, a="r2", b="bc", const=OUT_NARROW - 1, dst=2)      # c + 6
         .stage(Op.SHR, a="r0", b="r2")
         .stage(Op.ADD, a="r0", b="bc", const=1)
         .stage(Op.SHR, a="r0", b="bc", const=1)                           # on
         .done(vec_out=(0, 0), scal_out=("tail", 0, lvl), tail=(SFU_RECIP, 1, fm.r_shift)))
    i = (PcuProgram(p, counters).inputs(vec=[0], scal=[lvl])
         .stage(Op.QMUL, a="r0", b="bc", bc="s0", shift=fm.out_shift)
         .done(vec_out=(0, 0)))
    return g, h, i


def plan_softmax(p: FabricParams, fm: AttentionFormats, *, N: int, M: int, causal: bool,
                 s_addr: int, s_pitch: int, p_addr: int, p_pitch: int, l_addr: int) -> Kernel:
    """Step 2 of the module docstring: S (int32, row pitch `s_pitch` words) ->
    P (int16, row pitch `p_pitch` elements) and l (one int32 vector per row)."""
    _need_lanes(p)
    L = p.lanes
    Mk = _ceil(M, L)               # keys, padded to whole vectors
    nb = Mk // L
    rows = counter(N)
    x1 = _narrow(PcuProgram(p, [counter(nb), rows]).inputs(vec=[0]), fm).done(vec_out=(0, 0))
    x2 = _logits_program(p, fm, N=N, M=M, causal=causal)
    x3a = _running_max(PcuProgram(p, [counter(nb), rows]).inputs(vec=[0])).done(
        scal_out=(1, 0, 1))
    x3b = (PcuProgram(p, [counter(nb), rows]).inputs(vec=[0], scal=[1])
           .stage(Op.SUB, a="r0", b="bc", bc="s0")
           .done(vec_out=("tail", 0), tail=(SFU_EXP2, 0, fm.p_shift)))
    x4 = (PcuProgram(p, [counter(nb), rows]).inputs(vec=[0])
          .stage(Op.ADD, a="r0", b="xl")
          .stage(Op.ADD, a="r0", b="xl")
          .stage(Op.ADD, a="r0", b="xl")
          .stage(Op.ADD, a="r0", b="acc", acc_level=1, acc_init=AccInit.ZERO)
          .done(vec_out=(0, 1)))
    buf_lg = max(0, (nb - 1).bit_length())
    if 2 << buf_lg > p.pmu_depth:
        raise DoesNotFit(f"a row of {Mk} keys ({nb} vectors, double-buffered) does not fit a "
                         f"PMU of {p.pmu_depth} rows")
    side = pmu_stream(p, [counter(nb)], [1])
    pmu = {"en": 1, "nbuf_m1": 1, "buf_lg": buf_lg, "wr": side, "rd": dict(side)}
    vb = 4 * L
    agcu0 = agcu_config(
        read=Pattern(base=s_addr, counts=(nb, N), strides=(vb, 4 * s_pitch)),
        write=Pattern(base=p_addr, counts=(nb, N), strides=(2 * L, 2 * p_pitch),
                      elem=ELEM_INT16))
    agcu1 = agcu_config(write=Pattern(base=l_addr, counts=(N,), strides=(vb,)))
    agcu0["scal"] = agcu1["scal"] = 0
    nl = Netlist()
    for name, kind, role in (("x1", "pcu", "s16"), ("x2", "pcu", "t, mask"),
                             ("x3a", "pcu", "row max"), ("pmuT", "pmu", "t row"),
                             ("x3b", "pcu", "exp2"), ("x4", "pcu", "row sum"),
                             ("agcu0", "agcu", "S/P"), ("agcu1", "agcu", "l")):
        nl.add_unit(name, kind, role)
    nl.connect("S", ("agcu0", "vec", 0), ("x1", "vec", 0))
    nl.connect("s16", ("x1", "vec", 0), ("x2", "vec", 0))
    nl.connect("t", ("x2", "vec", 0), ("x3a", "vec", 0), ("pmuT", "vec", 0))
    nl.connect("m", ("x3a", "scal", 0), ("x3b", "scal", 0))
    nl.connect("trow", ("pmuT", "vec", 0), ("x3b", "vec", 0))
    nl.connect("p", ("x3b", "vec", 0), ("agcu0", "vec", 0), ("x4", "vec", 0))
    nl.connect("l", ("x4", "vec", 0), ("agcu1", "vec", 0))
    return Kernel("softmax", nl, {"x1": x1, "x2": x2, "x3a": x3a, "pmuT": pmu, "x3b": x3b,
                                  "x4": x4, "agcu0": agcu0, "agcu1": agcu1})


def plan_normalize(p: FabricParams, fm: AttentionFormats, *, N: int, d: int, o_addr: int,
                   o_pitch: int, l_addr: int, out_addr: int) -> Kernel:
    """Step 4 of the module docstring: O (int32, row pitch `o_pitch` words) and
    l -> out (int16, N x d, row-major)."""
    _need_lanes(p)
    L = p.lanes
    ng = d // L
    g, h, i = _normalize_programs(p, fm, [counter(ng), counter(N)], l_scalar=False)
    vb = 4 * L
    agcu0 = agcu_config(
        read=Pattern(base=o_addr, counts=(ng, N), strides=(vb, 4 * o_pitch)),
        write=Pattern(base=out_addr, counts=(ng, N), strides=(2 * L, 2 * d), elem=ELEM_INT16))
    agcu1 = agcu_config(read=Pattern(base=l_addr, counts=(N,), strides=(vb,)))
    agcu0["scal"] = agcu1["scal"] = 0
    nl = Netlist()
    for name, kind, role in (("g", "pcu", "leading one"), ("h", "pcu", "narrow, recip"),
                             ("i", "pcu", "o / l"), ("agcu0", "agcu", "O/out"),
                             ("agcu1", "agcu", "l")):
        nl.add_unit(name, kind, role)
    nl.connect("O", ("agcu0", "vec", 0), ("h", "vec", 0))
    nl.connect("l", ("agcu1", "vec", 0), ("g", "vec", 0), ("h", "vec", 1))
    nl.connect("c", ("g", "scal", 0), ("h", "scal", 0))
    nl.connect("on", ("h", "vec", 0), ("i", "vec", 0))
    nl.connect("r", ("h", "scal", 0), ("i", "scal", 0))
    nl.connect("out", ("i", "vec", 0), ("agcu0", "vec", 0))
    return Kernel("normalize", nl, {"g": g, "h": h, "i": i, "agcu0": agcu0, "agcu1": agcu1})


# -- the unfused attention ---------------------------------------------------------------

@dataclass
class AttentionProblem:
    """One head's attention: the fabric, N queries, M keys, head dim d, the
    mask and the fixed-point formats."""
    params: FabricParams
    N: int
    M: int
    d: int
    causal: bool
    formats: AttentionFormats


@dataclass
class UnfusedAttention(AttentionProblem):
    """The four configurations and the DRAM layout of an unfused attention."""
    scores: CompiledGemm          # S = Q K^T
    softmax: Kernel
    values: CompiledGemm          # O = P V
    normalize: Kernel
    l_addr: int
    out_addr: int
    bitstreams: list = field(default_factory=list)
    placements: dict = field(default_factory=dict)
    routings: dict = field(default_factory=dict)
    compile_seconds: float = 0.0

    @property
    def q_addr(self) -> int:
        return self.scores.plan.a_addr

    @property
    def dram_end(self) -> int:
        return self.out_addr + 2 * self.N * self.d

    def pack_k(self, k8) -> np.ndarray:
        """K as the scores GEMM's B operand: K^T, padded, panel-major."""
        return self.scores.plan.pack_b(np.asarray(k8).T)

    def pack_v(self, v8) -> np.ndarray:
        return self.values.plan.pack_b(v8)

    def inputs(self, q8, k8, v8) -> dict:
        """{DRAM address: int8 array} of Q, K and V in this kernel's layout."""
        return {self.q_addr: self.pad_q(q8), self.scores.plan.b_addr: self.pack_k(k8),
                self.values.plan.b_addr: self.pack_v(v8)}

    @property
    def iterations(self) -> int:
        """Iterations of the busiest PCU (a bound for the run's timeout)."""
        sp, vp = self.scores.plan, self.values.plan
        return max(sp.Mp * sp.Np * sp.Kt, vp.Mp * vp.Np * vp.Kt) // self.params.lanes

    def pad_q(self, q8) -> np.ndarray:
        return self.scores.plan.pad_a(q8)


def compile_attention_unfused(params: FabricParams, N: int, M: int, d: int,
                              formats: AttentionFormats, *, causal: bool = False,
                              seed: int = 0, base: int = 0x10000) -> UnfusedAttention:
    """Plan, place, route and encode the four configurations."""
    import time

    from .pathfinder import route
    from .place import place

    t0 = time.perf_counter()
    check_attention_shape(N, M, d, causal)
    _need_lanes(params)
    if formats.d != d:
        raise ShapeError(f"attention formats are for d={formats.d}, not d={d}")
    scores = compile_gemm(params, N, M, d, "int8", a_addr=base, seed=seed)
    sp = scores.plan
    values = compile_gemm(params, N, d, M, "int16", b_dtype="int8",
                          a_addr=_ceil(sp.dram_end, 64), seed=seed)
    vp = values.plan
    if vp.T != 1:
        raise DoesNotFit(f"attention's P V needs the {M} keys in one PMU block "
                         f"(pmu_depth {params.pmu_depth})")
    l_addr = _ceil(vp.dram_end, 64)
    out_addr = _ceil(l_addr + 4 * params.lanes * N, 64)
    softmax = plan_softmax(params, formats, N=N, M=M, causal=causal, s_addr=sp.c_addr,
                           s_pitch=sp.Np, p_addr=vp.a_addr, p_pitch=vp.Kp, l_addr=l_addr)
    normalize = plan_normalize(params, formats, N=N, d=d, o_addr=vp.c_addr, o_pitch=vp.Np,
                               l_addr=l_addr, out_addr=out_addr)
    att = UnfusedAttention(params, N, M, d, causal, formats, scores, softmax, values,
                           normalize, l_addr, out_addr)
    bitstreams = [scores.bitstream]
    for kernel in (softmax, normalize):
        placement = place(params, kernel.netlist, seed=seed)
        routing = route(placement, programs=kernel.programs)
        att.placements[kernel.name] = placement
        att.routings[kernel.name] = routing
        bitstreams.append(encode(routing.config))
    att.bitstreams = [scores.bitstream, bitstreams[1], values.bitstream, bitstreams[2]]
    att.compile_seconds = time.perf_counter() - t0
    return att


# -- the fused attention -----------------------------------------------------------------

def _scalar_side(p: FabricParams, counters: list, astride: list, rstride=()) -> dict:
    """A PMU side on scalar port 0: the word in bank ``sum(rstride_i k_i)`` at
    row ``sum(astride_i k_i)`` of the current buffer."""
    side = pmu_stream(p, counters, astride)
    side.update(scalar=1, rstride=pad_zeros(p, list(rstride)))
    return side


def _buf_lg(rows: int) -> int:
    """log2 of a PMU buffer holding `rows` rows (buffers are powers of two)."""
    return max(0, (rows - 1).bit_length())


def _fits_pmu(p: FabricParams, nbuf: int, rows: int) -> bool:
    """Whether `nbuf` buffers of `rows` rows each fit one PMU."""
    return nbuf << _buf_lg(rows) <= p.pmu_depth


def _pmu(nbuf: int, rows: int, wr: dict, rd: dict, p: FabricParams, what: str) -> dict:
    """A PMU of `nbuf` buffers of `rows` rows each (a power of two >= rows)."""
    buf_lg = _buf_lg(rows)
    if not _fits_pmu(p, nbuf, rows):
        raise DoesNotFit(f"fused attention: {what} needs {nbuf} x {1 << buf_lg} rows of a PMU; "
                         f"preset {p.name!r} has {p.pmu_depth} (K and V each live in one PMU: "
                         f"M x d <= {p.lanes * p.pmu_depth})")
    return {"en": 1, "nbuf_m1": nbuf - 1, "buf_lg": buf_lg, "wr": wr, "rd": rd}


@dataclass
class FusedAttention(AttentionProblem):
    """One configuration that computes the whole attention of one head; its
    DRAM layout: Q (N x d int8, row-major), K^T by key blocks (``pack_k``),
    V (keys padded to whole vectors, int8, ``pack_v``), out (N x d int16)."""
    kernel: Kernel
    q_addr: int
    k_addr: int
    v_addr: int
    out_addr: int
    placement: object = None
    routing: object = None
    bitstream: bytes = b""
    compile_seconds: float = 0.0

    @property
    def bitstreams(self) -> list:
        """The configuration, on the first head of a group placed side by side
        (the others share it)."""
        return [self.bitstream] if self.bitstream else []

    @property
    def resident(self) -> bool:
        return resident_kv(self.params, self.M, self.d)

    @property
    def tensor_bytes(self) -> int:
        """Off-chip bytes the plan moves: Q once, K and V (padded to whole
        key vectors) once or once per row, the int16 output once."""
        kv_reads = 1 if self.resident else self.N
        return self.N * self.d + kv_reads * 2 * self.Mk * self.d + 2 * self.N * self.d

    @property
    def Mk(self) -> int:
        return _ceil(self.M, self.params.lanes)

    @property
    def dram_end(self) -> int:
        return self.out_addr + 2 * self.N * self.d

    def inputs(self, q8, k8, v8) -> dict:
        """{DRAM address: int8 array} of Q, K and V in this kernel's layout."""
        return {self.q_addr: np.asarray(q8), self.k_addr: self.pack_k(k8),
                self.v_addr: self.pack_v(v8)}

    @property
    def iterations(self) -> int:
        """Iterations of A and of E (a bound for the run's timeout)."""
        return self.N * self.Mk * self.d // self.params.lanes

    def pack_k(self, k8) -> np.ndarray:
        """K^T by blocks of `lanes` keys: vector (b, c) = keys ``b*L ..`` of column c."""
        L = self.params.lanes
        kp = np.zeros((self.Mk, self.d), dtype=np.asarray(k8).dtype)
        kp[:self.M] = k8
        return kp.reshape(self.Mk // L, L, self.d).transpose(0, 2, 1).copy()

    def pack_v(self, v8) -> np.ndarray:
        """V with keys padded to whole vectors: row-major when it goes to a
        PMU; group-major (columns ``8g..8g+7`` of every key, then the next
        group) when it streams, so that each row's read is contiguous."""
        L = self.params.lanes
        vp = np.zeros((self.Mk, self.d), dtype=np.asarray(v8).dtype)
        vp[:self.M] = v8
        if self.resident:
            return vp
        return vp.reshape(self.Mk, self.d // L, L).transpose(1, 0, 2).copy()


def resident_kv(p: FabricParams, M: int, d: int) -> bool:
    """Whether the fused kernel keeps K and V in a PMU each (read from DRAM
    once) rather than streaming them from DRAM again for every query row."""
    return _fits_pmu(p, 1, _ceil(M, p.lanes) * d // p.lanes)


def plan_fused(p: FabricParams, fm: AttentionFormats, *, N: int, M: int, d: int, causal: bool,
               q_addr: int, k_addr: int, v_addr: int, out_addr: int,
               nl: Netlist | None = None, prefix: str = "") -> Kernel:
    """The fused kernel (docs/attention.md, "The fused kernel"): one
    configuration, every score and probability on chip. Per query row i and
    block b of ``lanes`` keys:

    ====  =====================================================================
    A     ``MAC(K^T[b, c], q[i, c], ACC)`` over c, ``ADD``, ``SHR rs`` -> s16
    B     ``QMUL(s16, C, qs)`` -> t, the mask (as the unfused X2)
    D     butterfly MAX, ``MAX`` with ACC (the running max T of the row),
          ``AND 0xFFFF0000`` -> M_b = m << 16 (scalar out), ``SUB(t, M_b)``,
          tail ``EXP2`` -> p (vector out)
    PMU P the row's p, read back as scalars p[b, j] once per column group
    PMU M the row's M_b, read back once per column group
    E     per (group g, block b): ``MAC(V[b*L + j, g], p[b, j], ACC)`` over j
          -> the block's sum of p v; ``ADD(p[b, j], ACC)`` -> its sum of p
    F     ``SUB(M_b, ACC)`` with ``acc_a`` (ACC = M_{b-1}; T_MASK at b = 0),
          ``SHR 16``, ``MIN 31`` -> delta; ``RSA``: o = (o >> delta) + sum p v,
          l = (l >> delta) + sum p, restarting per group: o_g and l per group
    G/H/I the normalization of the unfused kernel, once per group
    ====  =====================================================================

    PMUs Q (a row of Q, double-buffered, replayed as scalars per block), K
    and V (resident: loaded once, replayed for every row). When K or V does
    not fit a PMU (:func:`resident_kv`), AGCUs 1 and 2 stream them straight
    to A and E, read again for every row (DRAM traffic, not scores)."""
    _need_lanes(p)
    if not p.pcu_rescale:
        raise DoesNotFit(f"the fused attention kernel needs PCUs with the online rescale "
                         f"(RSA, acc_a: FabricParams.pcu_rescale); preset {p.name!r} has none")
    L = p.lanes
    G = d // L
    Mk = _ceil(M, L)
    nb = Mk // L
    rows = counter(N)
    a = _narrow(PcuProgram(p, [counter(d), counter(nb), rows]).inputs(vec=[0], scal=[0])
                .stage(Op.MAC, a="r0", b="bc", c="acc", bc="s0", acc_level=1), fm
                ).done(vec_out=(0, 1))
    b = _logits_program(p, fm, N=N, M=M, causal=causal)
    dd = (_running_max(PcuProgram(p, [counter(nb), rows]).inputs(vec=[0]))
          .stage(Op.SUB, a="r0", b="r1", dst=0)
          .done(vec_out=("tail", 0), scal_out=(1, 0, 0), tail=(SFU_EXP2, 0, fm.p_shift)))
    e = (PcuProgram(p, [counter(L), counter(nb * G), rows]).inputs(vec=[0], scal=[0])
         .stage(Op.MAC, a="r0", b="bc", c="acc", bc="s0", acc_level=1)
         .stage(Op.ADD, a="bc", b="acc", bc="s0", dst=1, acc_level=1)
         .done(vec_out=(0, 1), scal_out=(1, 0, 1)))
    f = (PcuProgram(p, [counter(nb), counter(G), rows]).inputs(vec=[0], scal=[0, 0])
         .stage(Op.SUB, a="bc", b="acc", bc="s1", dst=1, acc_level=1,
                acc_init=AccInit.CONST, const=fm.t_mask, acc_a=1)
         .stage(Op.SHR, a="r1", b="bc", const=16, dst=1)
         .stage(Op.MIN, a="r1", b="bc", const=MAX_DELTA, dst=1)
         .stage(Op.RSA, a="r0", b="r1", dst=0, acc_level=1)
         .stage(Op.RSA, a="bc", b="r1", bc="s0", dst=2, acc_level=1)
         .done(vec_out=(0, 1), scal_out=(2, 0, 1)))
    g, h, i = _normalize_programs(p, fm, [counter(G), rows], l_scalar=True)

    pmu_q = _pmu(2, G, pmu_stream(p, [counter(G)], [1]),
                 _scalar_side(p, [counter(L), counter(G), counter(nb)], [0, 1, 0], [1]),
                 p, f"a row of Q ({G} vectors)")
    kv = {}
    if resident_kv(p, M, d):
        kv["pmuK"] = _pmu(1, nb * d, pmu_stream(p, [counter(nb * d)], [1]),
                          pmu_stream(p, [counter(nb * d), rows], [1, 0]), p,
                          f"K ({Mk} keys x d={d}: {nb * d} vectors)")
        kv["pmuV"] = _pmu(1, Mk * G, pmu_stream(p, [counter(Mk * G)], [1]),
                          pmu_stream(p, [counter(Mk), counter(G), rows], [G, 1, 0]), p,
                          f"V ({Mk} keys x d={d}: {Mk * G} vectors)")
    pmu_p = _pmu(2, nb, pmu_stream(p, [counter(nb)], [1]),
                 _scalar_side(p, [counter(L), counter(nb), counter(G)], [0, 1, 0], [1]),
                 p, f"a row of p ({nb} vectors)")
    pmu_m = _pmu(2, nb, _scalar_side(p, [counter(nb)], [1]),
                 _scalar_side(p, [counter(nb), counter(G)], [1, 0]),
                 p, f"a row's running maxima ({nb} words)")
    agcu0 = agcu_config(
        read=Pattern(base=q_addr, counts=(G, N), strides=(L, d), elem=ELEM_INT8),
        write=Pattern(base=out_addr, counts=(G, N), strides=(2 * L, 2 * d), elem=ELEM_INT16))
    if kv:      # K and V once, into their PMUs
        agcu1 = agcu_config(read=Pattern(base=k_addr, counts=(nb * d,), strides=(L,),
                                         elem=ELEM_INT8))
        agcu2 = agcu_config(read=Pattern(base=v_addr, counts=(Mk * G,), strides=(L,),
                                         elem=ELEM_INT8))
    else:       # K and V too large for a PMU: read again for every row, in use order
        agcu1 = agcu_config(read=Pattern(base=k_addr, counts=(nb * d, N), strides=(L, 0),
                                         elem=ELEM_INT8))
        agcu2 = agcu_config(read=Pattern(base=v_addr, counts=(Mk * G, N), strides=(L, 0),
                                         elem=ELEM_INT8))   # V group-major (pack_v)
    for prog in (agcu0, agcu1, agcu2):
        prog["scal"] = 0
    units = [("a", "pcu", "scores"), ("b", "pcu", "t, mask"), ("d", "pcu", "max, exp2"),
             ("e", "pcu", "p V, sum p"), ("f", "pcu", "rescale o, l"),
             ("g", "pcu", "leading one"), ("h", "pcu", "narrow, recip"), ("i", "pcu", "o / l"),
             ("pmuQ", "pmu", "Q row"), ("pmuP", "pmu", "p row"), ("pmuM", "pmu", "row maxima"),
             ("agcu0", "agcu", "Q/out"), ("agcu1", "agcu", "K"), ("agcu2", "agcu", "V")]
    nets = [("q", "pmuQ", "scal", "a", "scal", 0),
            ("Q", "agcu0", "vec", "pmuQ", "vec", 0),
            ("s16", "a", "vec", "b", "vec", 0), ("t", "b", "vec", "d", "vec", 0),
            ("p", "d", "vec", "pmuP", "vec", 0), ("Mb", "d", "scal", "pmuM", "scal", 0),
            ("pj", "pmuP", "scal", "e", "scal", 0), ("pv", "e", "vec", "f", "vec", 0),
            ("psum", "e", "scal", "f", "scal", 0), ("Mg", "pmuM", "scal", "f", "scal", 1),
            ("o", "f", "vec", "h", "vec", 0), ("c", "g", "scal", "h", "scal", 0),
            ("on", "h", "vec", "i", "vec", 0), ("r", "h", "scal", "i", "scal", 0),
            ("out", "i", "vec", "agcu0", "vec", 0)]
    if kv:
        units += [("pmuK", "pmu", "K^T"), ("pmuV", "pmu", "V")]
        nets += [("K", "agcu1", "vec", "pmuK", "vec", 0), ("kT", "pmuK", "vec", "a", "vec", 0),
                 ("V", "agcu2", "vec", "pmuV", "vec", 0), ("v", "pmuV", "vec", "e", "vec", 0)]
    else:
        nets += [("kT", "agcu1", "vec", "a", "vec", 0), ("v", "agcu2", "vec", "e", "vec", 0)]
    nl = Netlist() if nl is None else nl
    head = f"head {prefix.rstrip('_')}: " if prefix else ""
    for name, kind, role in units:
        nl.add_unit(prefix + name, kind, head + role)
    for net, src_u, net_kind, dst_u, _, port in nets:
        nl.connect(prefix + net, (prefix + src_u, net_kind, 0), (prefix + dst_u, net_kind, port))
    # l goes to G and H (multicast)
    nl.connect(prefix + "l", (prefix + "f", "scal", 0), (prefix + "g", "scal", 0),
               (prefix + "h", "scal", 1))
    programs = {"a": a, "b": b, "d": dd, "e": e, "f": f, "g": g, "h": h, "i": i,
                "pmuQ": pmu_q, "pmuP": pmu_p, "pmuM": pmu_m, "agcu0": agcu0, "agcu1": agcu1,
                "agcu2": agcu2, **kv}
    return Kernel("fused", nl, {prefix + k: v for k, v in programs.items()})


def fused_heads_per_config(p: FabricParams, M: int, d: int) -> int:
    """How many heads of the fused kernel fit the fabric side by side: each
    takes 8 PCUs, 3 AGCUs and 5 PMUs (3 when K and V stream)."""
    pmus = 5 if resident_kv(p, M, d) else 3
    return max(0, min(p.num_pcus // 8, p.agcus // 3, p.num_pmus // pmus))


def compile_attention_fused(params: FabricParams, N: int, M: int, d: int,
                            formats: AttentionFormats, *, causal: bool = False,
                            seed: int = 0, base: int = 0x10000) -> FusedAttention:
    """Plan, place, route and encode the fused kernel (one configuration)."""
    return compile_attention_fused_heads(params, N, M, d, [formats], causal=causal, seed=seed,
                                         base=base)[0]


def compile_attention_fused_heads(params: FabricParams, N: int, M: int, d: int,
                                  formats: list, *, causal: bool = False, seed: int = 0,
                                  base: int = 0x10000) -> list:
    """Heads side by side: one configuration that runs ``len(formats)`` heads
    of the fused kernel at once, each on its own units (names ``h0_a``, ...)
    and DRAM region. Returns one :class:`FusedAttention` per head; the first
    holds the bitstream."""
    import time

    from .pathfinder import route
    from .place import place

    t0 = time.perf_counter()
    check_attention_shape(N, M, d, causal)
    _need_lanes(params)
    room = fused_heads_per_config(params, M, d)
    if not 1 <= len(formats) <= room:
        raise DoesNotFit(f"{len(formats)} fused attention heads side by side; preset "
                         f"{params.name!r} holds {room} (8 PCUs, 3 AGCUs and "
                         f"{5 if resident_kv(params, M, d) else 3} PMUs per head)")
    Mk = _ceil(M, params.lanes)
    nl = Netlist()
    programs = {}
    atts = []
    for h, fm in enumerate(formats):
        if fm.d != d:
            raise ShapeError(f"attention formats are for d={fm.d}, not d={d}")
        q_addr = base
        k_addr = _ceil(q_addr + N * d, 64)
        v_addr = _ceil(k_addr + Mk * d, 64)
        out_addr = _ceil(v_addr + Mk * d, 64)
        kernel = plan_fused(params, fm, N=N, M=M, d=d, causal=causal, q_addr=q_addr,
                            k_addr=k_addr, v_addr=v_addr, out_addr=out_addr, nl=nl,
                            prefix=f"h{h}_" if len(formats) > 1 else "")
        programs.update(kernel.programs)
        atts.append(FusedAttention(params, N, M, d, causal, fm, kernel, q_addr, k_addr, v_addr,
                                   out_addr))
        base = _ceil(out_addr + 2 * N * d, 64)
    kernel = Kernel("fused", nl, programs)
    placement = place(params, nl, seed=seed)
    routing = route(placement, programs=programs)
    bitstream = encode(routing.config)
    for h, att in enumerate(atts):
        att.kernel, att.placement, att.routing = kernel, placement, routing
        att.bitstream = bitstream if h == 0 else b""
    atts[0].compile_seconds = time.perf_counter() - t0
    return atts
