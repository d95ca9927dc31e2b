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

from ..hw.agcu import ELEM_INT16
from ..hw.params import FabricParams
from ..hw.pcu import AccInit, Op
from ..hw.sfu import SFU_EXP2, SFU_RECIP
from ..sim.agcu_model import Pattern, agcu_config
from .attention_model import (HEAD_DIMS, MAX_LEN, NORM_BASE, NORM_LANES, OUT_NARROW,
                              AttentionFormats)
from .bitstream import encode
from .errors import DoesNotFit, ShapeError
from .gemm import CompiledGemm, compile_gemm
from .netlist import Netlist
from .programs import PcuProgram, counter, pmu_stream

__all__ = ["Kernel", "plan_softmax", "plan_normalize", "UnfusedAttention",
           "compile_attention_unfused", "check_attention_shape"]



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


def plan_softmax(p: FabricParams, fm: AttentionFormats, *, N: int, M: int, causal: bool,
                 s_addr: int, s_pitch: int, p_addr: int, p_pitch: int, l_addr: int) -> Kernel:
    """Step 2 of the module docstring: S (int32, row pitch `s_pitch` words) ->
    P (int16, row pitch `p_pitch` elements) and l (one int32 vector per row)."""
    _need_lanes(p)
    L = p.lanes
    Mk = _ceil(M, L)               # keys, padded to whole vectors
    nb = Mk // L
    rows = counter(N)
    x1 = (PcuProgram(p, [counter(nb), rows]).inputs(vec=[0])
          .stage(Op.ADD, a="r0", b="bc", const=(1 << fm.rs) >> 1)
          .stage(Op.SHR, a="r0", b="bc", const=fm.rs)
          .done(vec_out=(0, 0)))
    x2 = PcuProgram(p, [counter(Mk, L), rows]).inputs(vec=[0])
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
    x2 = x2.done(vec_out=(0, 0))
    x3a = (PcuProgram(p, [counter(nb), rows]).inputs(vec=[0])
           .stage(Op.MAX, a="r0", b="xl", dst=1)
           .stage(Op.MAX, a="r1", b="xl", dst=1)
           .stage(Op.MAX, a="r1", b="xl", dst=1)
           .stage(Op.MAX, a="r1", b="acc", dst=1, acc_level=1, acc_init=AccInit.MIN)
           .stage(Op.AND, a="r1", b="bc", const=0xFFFF_0000, dst=1)
           .done(scal_out=(1, 0, 1)))
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
    rows = counter(N)
    g = (PcuProgram(p, [rows]).inputs(vec=[0])
         .stage(Op.SHL, a="bc", b="lane", const=1 << NORM_BASE, dst=1)   # 2**(15 + lane)
         .stage(Op.LT, a="r0", b="r1", dst=1)                             # l < threshold
         .stage(Op.ADD, a="r1", b="xl", dst=1)
         .stage(Op.ADD, a="r1", b="xl", dst=1)
         .stage(Op.ADD, a="r1", b="xl", dst=1)
         .stage(Op.SUB, a="bc", b="r1", const=NORM_LANES, dst=1)          # c
         .done(scal_out=(1, 0, 0)))
    h = (PcuProgram(p, [counter(ng), rows]).inputs(vec=[0, 1], scal=[1])
         .stage(Op.PASS, a="bc", bc="s0", dst=2)                          # c
         .stage(Op.SHR, a="r1", b="r2", dst=1)                            # lam = l >> c
         .stage(Op.ADD, a="r2", b="bc", const=OUT_NARROW - 1, dst=2)      # c + 6
         .stage(Op.SHR, a="r0", b="r2")
         .stage(Op.ADD, a="r0", b="bc", const=1)
         .stage(Op.SHR, a="r0", b="bc", const=1)                          # on
         .done(vec_out=(0, 0), scal_out=("tail", 0, 1), tail=(SFU_RECIP, 1, fm.r_shift)))
    i = (PcuProgram(p, [counter(ng), rows]).inputs(vec=[0], scal=[1])
         .stage(Op.QMUL, a="r0", b="bc", bc="s0", shift=fm.out_shift)
         .done(vec_out=(0, 0)))
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
class UnfusedAttention:
    """The four configurations and the DRAM layout of an unfused attention."""
    params: FabricParams
    N: int
    M: int
    d: int
    causal: bool
    formats: AttentionFormats
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
