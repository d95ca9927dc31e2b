"""The pattern compute unit (PCU): ``lanes`` SIMD lanes x ``stages`` pipeline
stages, a counter chain, per-dependency token counters and a special-function
tail, as in Plasticine's PCU (Prabhakar et al., ISCA 2017, sec. 3.2) with the
exp2/reciprocal of SambaNova's RDUs.

How a PCU runs (every number below is a field of :func:`pcu_config_layout`):

* **Iterations.** The counter chain (``counters`` counters, counter 0
  innermost, 16-bit ``start``/``stop``/``stride``; a counter wraps when
  ``value + stride >= stop``, so it runs at least once) names one iteration per
  firing. A *run* is one pass over the whole chain. "Level" fields select a
  group of iterations: level 0 = every iteration, level l = counters
  ``0..l-1`` at their first (``first``) or last (``last``) value, level
  ``counters`` = once per run.
* **Firing.** An iteration fires when ``en``, every enabled vector/scalar
  input FIFO holds a word, every enabled token dependency whose level starts a
  group here has a token, and every enabled output holds a credit (a free
  slot in its queue). An input is read on every iteration and popped on the
  last iteration of its ``level`` group (a scalar held for an inner loop); a
  dependency consumes one token at the first iteration of its ``level``
  group. Token counters start at ``init`` (N-buffer credits). Any change of
  the configuration (and ``en`` = 0) clears the counter chain and the token
  counters: a new program starts from its first iteration.
* **Stages.** Each lane carries ``pcu_regs`` pipeline registers R0.. from
  stage to stage. At stage 0 they hold the vector inputs' lane elements
  (R_j = vector input j, 0 if disabled). Stage k computes
  ``op(a, b, c)`` for every lane and writes the result to register ``dst``;
  the other registers pass through (op NOP writes nothing). Operand sources:
  ``R0..R{n-1}``; ``BC``, the stage's broadcast value (its ``const``, a
  scalar input or a counter value, per ``bc``); ``ACC``, the lane
  accumulator; ``XL``, operand ``a`` of the partner lane
  ``lane ^ 2**(k mod log2(lanes))`` (0 if ``a`` is ACC or XL; a butterfly:
  ADD or MAX over log2(lanes) consecutive stages leaves the sum or max of all
  lanes in every lane); ``LANE``, the lane index.
* **Accumulators.** ``ACC`` reads the lane's previous result in this stage
  (a register per lane and stage), except on the first iteration of its
  ``acc_level`` group, where it reads ``acc_init`` (0, INT_MIN, INT_MAX or
  ``const``). ACC is an operand ``a`` or ``b`` of PASS, ADD, SUB, MAX, MIN
  and SEL (:data:`ACC_OPERAND_OPS`) and ``c`` of MAC; elsewhere it reads 0
  (a shift, a bitwise op or a compare of ACC is not an accumulation the
  hardware closes in one cycle). ``MAC`` with ``c = ACC`` is a dot-product lane. With
  ``acc_a`` set, the register keeps the stage's operand ``a`` instead of its
  result: ``ACC`` is then ``a`` one iteration late, a delay (``SUB(a, ACC)``
  is a first difference, e.g. how far a running max moved). RSA and
  ``acc_a`` exist with ``pcu_rescale`` (RSA gives 0 and ``acc_a`` is
  ignored without it).
* **Ops** (32-bit two's complement): see :class:`Op`. MUL, MAC and QMUL exist
  only in ``pcu_mul_stages``; elsewhere, and for unknown codes, the result
  is 0. Their product is formed before the execute cycle, so its operands
  ``a`` and ``b`` read ``ACC`` as 0 (MAC's addend ``c`` may be ``ACC``: a
  dot product accumulates in one cycle). SEL tests ``c != 0`` before the
  execute cycle too, so its ``c`` reads ``ACC`` as 0 in every stage.
* **Tail.** After the last stage, an optional special-function tail
  (:mod:`.sfu`) applies exp2 or reciprocal to register ``tail.src`` of every
  lane. Outputs read a register (``src`` < ``pcu_regs``) or the tail
  (``src`` = ``pcu_regs``; 0 without an SFU) of the last stage; a scalar
  output takes one ``lane``.
* **Outputs.** Each output emits on the last iteration of its ``level`` group
  (level ``counters`` on a token output = a done token once per run; credit
  tokens for an upstream N-buffer are the same thing). Its ``last`` bit is
  chosen by ``last``: 0, a level's last iteration, or an input's ``last``.
* **Bypass.** ``bypass.<net>`` forwards input ``sel`` of that network to its
  output 0 (what :meth:`PCU.pass_config` sets); that input and output are then
  not used by the computation.

Timing: the firing decision is the PCU's only enable, and it is an AND of
flops: ``run`` and one flag per enabled input ("holds a word"), token
dependency ("has a token, or needs none now") and output ("has a credit"),
each with its static enable folded in and computed a cycle ahead
(:func:`~.links.ahead_flag`, from :func:`~.links.flagged_counter`'s
registered ``nz`` and ``many``). The only logic between ``fire`` and those
flags is the choice of each flag's "fired" or "held" next value. The PCU acts
on a registered copy of its configuration (:func:`~.unit.settled_config`;
a change reaches the copy three cycles later and holds the unit cleared for two
cycles). The pipeline never stalls: its registers load every cycle and a
valid bit travels with each iteration.
Instead, every output is a queue of :meth:`PCU.out_depth` words, and a
firing reserves a slot in each queue its iteration will write (a credit,
returned when the word leaves the queue), so no ready signal reaches the
datapath and no enable fans out over it. The vector and scalar input FIFOs are read
combinationally (``StreamFIFO(registered=False)``): a pop moves their read
pointer, where a registered head would put the firing decision on the load
enable of every bit of the head. A firing's cycle only registers what
the iteration reads of the inputs (the heads, the counters; the *capture*
cycle), so the FIFOs' reads and the firing decision lie before registers,
not in front of stage 0's operand selects. Every stage takes three cycles:
a fetch cycle selects the operands into registers, an execute cycle runs
the ALU into a result register per lane, and a transit cycle applies the
stage's write select (which pipeline register takes the result; static)
into the registers the next stage reads, so the wires between two stages
are a path of their own; a multiplier stage has a multiply cycle (the DSP,
between its own input and output registers) and a round cycle (the product
out of the DSP, QMUL's rounding) between fetch and execute. What a stage reads through a configuration
select that is the same for every lane (its broadcast operand, whether an
iteration starts an accumulator group) is chosen a cycle early, by the
stage before (for stage 0, the capture cycle). So is each lane's operand
``a`` and its zero test: ``XL``, the partner lane's ``a``, is then a
register, and the wire between two lanes starts at a flop instead of after
the partner's operand select. The zero test of every register travels
beside it, so SEL's fetched test ``c != 0`` is a select of flops, with no
32-bit test on the fetch path: an input FIFO stores each word's test as the
word arrives, the transit cycle registers the result's test or the one
carried with a register passed through, and a broadcast is chosen two
cycles early, its test registered a cycle after it (stage 0 chooses its
broadcast a cycle early, and the test from those stored with the heads).
Under LANE_COPIES each lane's operand selects, subtract flag and QMUL flag
have ``SELECT_COPIES`` copies, each for a run of the word's bits. Stage 0's
early selects read the FIFO heads unmasked (a disabled input selects a code
that reads 0), so no enable's mask lies between a FIFO's read and those
registers. An operand that is ``ACC`` is not selected
in the execute cycle at all: its register is a copy of the lane's
accumulator (it loads what the accumulator loads), so an accumulation
closes in one cycle. The accumulators load a short form of the result, that
of the ops that may read ACC (the adder or multiply-add, then ``a`` or
``b`` by the compare): the shifter, the bitwise unit and the result select
are off the loop. That select is one of two that registers give before the
compare ends, chosen by the compare's sign (:func:`~.switch.select_late`: on ECP5 the sign drives
the wide mux that joins them, so no LUT lies between the carry chain and
the accumulators' selects). The stage's op decoding is
registered from the configuration. A stage's accumulators load only for
valid iterations (so ``ACC`` is the previous iteration's result, bubbles or
not). Under continuous flow the PCU fires every cycle and retires one
iteration per cycle.

Area: the lane datapath is written for the ECP5 (``docs/area.md`` has the
measured figures): operand selects are binary mux trees that
:func:`~.switch.mux_tree` builds from LUT4/PFUMX/L6MUX21 cells when
synthesizing for ECP5; a stage without a multiplier fetches only ``c != 0``
(all that SEL reads of ``c``); one adder serves ADD/SUB/LT, one multiply-add
serves MUL/MAC/QMUL, one shifter SHL/SHR/QMUL (built from the slices' wide
muxes: :func:`~.switch.shift_right`); the result is a 4:1 select, then
``a`` where PASS, MAX, MIN or SEL take it (last, so that a compare's carry
chain meets one select).
"""

from __future__ import annotations

import contextvars
import enum

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from .counters import CounterChain
from .links import NETWORKS, StreamFIFO, ahead_flag, bit_runs, network_layout
from .params import FabricParams
from .sfu import SFU_LATENCY, SFULane
from .switch import (ECP5_MUXES, add_inverted, mux2, mux_tree, select4_gated, select_late,
                     shift_right)
from .unit import (flagged_counter, pass_config_layout, settled_config, unit_port_counts,
                   unit_signature_members)

__all__ = ["Op", "AccInit", "ACC_OPERAND_OPS", "acc_readers", "PCU", "pcu_config_layout", "mul_stages", "stage_latency",
           "xl_level", "src_code", "bc_code", "last_code", "COUNTER_WIDTH", "TOKEN_MAX"]

#: Set (by :func:`tessera.hw.synth.synthesize`) while a design is elaborated
#: for place and route: each lane of a stage then reads its own copies of the
#: stage's decoded control, valid flag and accumulator initial value (flops
#: named ``*_rep``, kept apart by the synthesis script),
#: so that no flop drives every lane. The copies hold the same values as the
#: shared registers they copy; simulation models read the shared registers
#: (Verilator: a third fewer cycles per second with the copies, measured on
#: the default GEMM).
LANE_COPIES = contextvars.ContextVar("tessera_pcu_lane_copies", default=False)

#: Copies of the PCU's firing decision under LANE_COPIES (tokens, outputs
#: and pipeline; input FIFO pops; the counter chain's step), each from its
#: own copies of the firing flags, so that no one net carries the decision
#: across the unit's control.
FIRE_GROUPS = 3

#: Copies of each lane's operand selects (a, b, and c where it is a word) and
#: of its adder's subtract flag and QMUL's shifter-input flag under
#: LANE_COPIES, each driving an equal run of the word's bits (:func:`~.links.bit_runs`),
#: so that no flop drives the logic of all 32 bits.
SELECT_COPIES = 2

#: The decoded flags a lane reads per run of bits, ``ld[name + "_runs"]``:
#: `SELECT_COPIES` copies under LANE_COPIES (the first also ``ld[name]``),
#: else the one shared flag.
RUN_FLAGS = ("sub", "qmul")

#: Copies of each lane's `take` (MAX/MIN/PASS/SEL's select of `a`) under
#: LANE_COPIES: half select the result, half the accumulators' short result
#: (whose copies are the two selects of `select_late`, per run of bits), so
#: that no flop after the decoding drives all 64 selects.
TAKE_COPIES = 4

COUNTER_WIDTH = 16
TOKEN_MAX = 15            # a token counter holds 0..15 tokens


class Op(enum.IntEnum):
    """Stage ops. ``a``, ``b``, ``c`` are 32-bit; signed where it matters."""
    NOP = 0     # write nothing
    PASS = 1    # a
    ADD = 2     # a + b
    SUB = 3     # a - b
    MUL = 4     # a[:mul_width] * b[:mul_width] (signed), low 32 bits
    MAC = 5     # MUL + c
    QMUL = 6    # (MUL + 2**(shift-1)) >> shift, arithmetic (round half up)
    MAX = 7     # signed
    MIN = 8
    AND = 9
    OR = 10
    XOR = 11
    SHL = 12    # a << b[0:5]
    SHR = 13    # a >> b[0:5], arithmetic
    LT = 14     # 1 if a < b (signed) else 0
    EQ = 15     # 1 if a == b else 0
    SEL = 16    # a if c != 0 else b
    RSA = 17    # (ACC >> b[0:5]) + a, arithmetic: rescale-accumulate (an online
                # softmax's o = o * 2**-delta + x, in one stage); pcu_rescale only


MUL_OPS = (Op.MUL, Op.MAC, Op.QMUL)
#: The ops whose operands a and b may be ACC; elsewhere ACC reads 0 there
#: (MAC's c may be ACC too; RSA reads the accumulator itself). Their results
#: are the short form the accumulators load (`PCU._alu`), so that the
#: shifter, the bitwise unit and the compares are not on an accumulation's
#: one-cycle loop.
ACC_OPERAND_OPS = (Op.PASS, Op.ADD, Op.SUB, Op.MAX, Op.MIN, Op.SEL)


def acc_readers(operand: str) -> tuple:
    """The ops whose `operand` ("a", "b" or "c") reads ACC; elsewhere ACC
    reads 0 there. One rule for the RTL, the golden model and the program
    builder."""
    return (Op.MAC,) if operand == "c" else ACC_OPERAND_OPS


class AccInit(enum.IntEnum):
    ZERO = 0
    MIN = 1     # INT_MIN, for a running max
    MAX = 2     # INT_MAX, for a running min
    CONST = 3   # the stage's const


def _check_params(params):
    if not isinstance(params, FabricParams):
        raise TypeError(f"params must be a FabricParams, not {params!r}")


def mul_stages(params: FabricParams) -> frozenset:
    """Indices (0-based) of the stages that hold a multiplier."""
    return frozenset(k % params.stages for k in params.pcu_mul_stages)


def stage_latency(params: FabricParams, k: int) -> int:
    """Cycles of stage k: a fetch cycle (the operand selects, into
    registers), in a multiplier stage a multiply cycle (the DSP between its
    input and output registers) and a round cycle (the product out of the
    DSP, QMUL's rounding), an execute cycle (the ALU, into the result
    registers) and a transit cycle (the write select, into the registers the
    next stage reads): 3, or 5 in a multiplier stage. Registering the
    operands of every stage, not only of the multiplier stages, takes the
    operand selects off the path through the ALU, and the transit registers
    take the wires between two stages off both, at the cost of flops only
    (docs/area.md)."""
    return 5 if k in mul_stages(params) else 3


def xl_level(params: FabricParams, k: int) -> int:
    """Stage k's butterfly level: XL reads lane ``lane ^ 2**level``."""
    return k % max(1, (params.lanes - 1).bit_length())


def src_code(params: FabricParams, name: str) -> int:
    """Operand source code: 'r0'..'r{n-1}', 'bc', 'acc', 'xl', 'lane'."""
    nr = params.pcu_regs
    codes = {f"r{j}": j for j in range(nr)}
    codes.update(bc=nr, acc=nr + 1, xl=nr + 2, lane=nr + 3)
    try:
        return codes[name]
    except KeyError:
        raise ValueError(f"unknown PCU operand source {name!r}; choose one of "
                         f"{', '.join(codes)}") from None


def bc_code(params: FabricParams, name: str) -> int:
    """Broadcast value code: 'const', 's0'.. (scalar inputs), 'c0'.. (counters)."""
    codes = {"const": 0}
    codes.update({f"s{j}": 1 + j for j in range(params.unit_scal_in)})
    codes.update({f"c{i}": 1 + params.unit_scal_in + i for i in range(params.counters)})
    try:
        return codes[name]
    except KeyError:
        raise ValueError(f"unknown PCU broadcast source {name!r}; choose one of "
                         f"{', '.join(codes)}") from None


def last_code(params: FabricParams, name: str) -> int:
    """Output ``last`` code: 'zero', 'level1'..'level{counters}' (that level's
    last iteration), 'v0'.. / 's0'.. (that input's ``last`` bit)."""
    codes = {"zero": 0}
    codes.update({f"level{l}": l for l in range(1, params.counters + 1)})
    codes.update({f"v{j}": 1 + params.counters + j for j in range(params.unit_vec_in)})
    codes.update({f"s{j}": 1 + params.counters + params.unit_vec_in + j
                  for j in range(params.unit_scal_in)})
    try:
        return codes[name]
    except KeyError:
        raise ValueError(f"unknown PCU last source {name!r}; choose one of "
                         f"{', '.join(codes)}") from None


def _r(n):
    """A field holding 0..n-1 (at least one bit)."""
    return range(max(n, 2))


def pcu_config_layout(params: FabricParams) -> data.StructLayout:
    _check_params(params)
    p = params
    nr, c = p.pcu_regs, p.counters
    level = range(c + 1)
    n_last = 1 + c + p.unit_vec_in + p.unit_scal_in
    src = range(nr + 4)
    counter = data.StructLayout({"start": COUNTER_WIDTH, "stop": COUNTER_WIDTH,
                                 "stride": COUNTER_WIDTH})
    data_in = data.StructLayout({"en": 1, "level": level})
    dep = data.StructLayout({"en": 1, "level": level, "init": range(TOKEN_MAX + 1)})
    stage = data.StructLayout({
        "op": 5, "a": src, "b": src, "c": src, "dst": _r(nr),
        "bc": _r(1 + p.unit_scal_in + c), "shift": 5,
        "acc_level": level, "acc_init": 2, "acc_a": 1, "const": 32,
    })
    vec_out = data.StructLayout({"en": 1, "src": range(nr + 1), "level": level,
                                 "last": _r(n_last)})
    scal_out = data.StructLayout({"en": 1, "src": range(nr + 1), "lane": _r(p.lanes),
                                  "level": level, "last": _r(n_last)})
    ctrl_out = data.StructLayout({"en": 1, "level": level, "last": _r(n_last)})
    fields = {
        "bypass": pass_config_layout(p),
        "en": 1,
        "counters": data.ArrayLayout(counter, c),
        "vec_in": data.ArrayLayout(data_in, p.unit_vec_in),
        "scal_in": data.ArrayLayout(data_in, p.unit_scal_in),
        "ctrl_in": data.ArrayLayout(dep, p.unit_ctrl_in),
        "stages": data.ArrayLayout(stage, p.stages),
    }
    if p.pcu_sfu:
        fields["tail"] = data.StructLayout({"op": 2, "src": _r(nr), "shift": 5})
    fields.update({
        "vec_out": data.ArrayLayout(vec_out, p.unit_vec_out),
        "scal_out": data.ArrayLayout(scal_out, p.unit_scal_out),
        "ctrl_out": data.ArrayLayout(ctrl_out, p.unit_ctrl_out),
    })
    return data.StructLayout(fields)


def _later(m, value, shape, name):
    """`value`, a cycle later: a register named `name`."""
    r = Signal(shape, name=name)
    m.d.sync += r.eq(value)
    return r


def _registered_multiply(m, a, b, a_reg, b_reg, width, name):
    """The signed product of `a_reg` and `b_reg`, which are registers of `a`
    and `b` (loaded every cycle, reset to 0): ``width`` x ``width`` ->
    ``2 * width`` bits, in a register (reset to 0) that loads every cycle:
    the product of the operands fetched two cycles before.

    When synthesizing for ECP5 (:data:`~.switch.ECP5_MUXES`) and ``width <=
    18``, the product comes from a MULT18X18D whose own input registers hold
    copies of `a` and `b` and whose own output register holds the product
    (clock CLK0, synchronous reset RST0 = the domain's reset): the operands'
    routing into the DSP block lies before its input registers, in the fetch
    cycle, and the routing out of it after its output register, so the
    multiply cycle is the DSP alone. nextpnr times the registered modes from
    its DSP timing database. Elsewhere it is a register of ``a_reg * b_reg``."""
    out = Signal(signed(2 * width), name=name)
    if not (ECP5_MUXES.get() and width <= 18):
        m.d.sync += out.eq(a_reg[:width].as_signed() * b_reg[:width].as_signed())
        return out
    ext_a = Signal(18, name=f"{name}_a")
    ext_b = Signal(18, name=f"{name}_b")
    p = Signal(36, name=f"{name}_p")
    m.d.comb += [ext_a.eq(a[:width].as_signed()), ext_b.eq(b[:width].as_signed())]
    ports = {f"i_A{i}": ext_a[i] for i in range(18)}
    ports.update({f"i_B{i}": ext_b[i] for i in range(18)})
    ports.update({f"i_C{i}": Const(0, 1) for i in range(18)})
    ports.update({f"o_P{i}": p[i] for i in range(36)})
    zero, one = Const(0, 1), Const(1, 1)
    ports.update(i_SIGNEDA=one, i_SIGNEDB=one, i_SOURCEA=zero, i_SOURCEB=zero,
                 i_CLK0=ClockSignal(), i_CLK1=zero, i_CLK2=zero, i_CLK3=zero,
                 i_CE0=one, i_CE1=one, i_CE2=one, i_CE3=one,
                 i_RST0=ResetSignal(), i_RST1=zero, i_RST2=zero, i_RST3=zero)
    m.submodules[f"{name}_dsp"] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
        p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
        p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
        p_CLK3_DIV="ENABLED", p_HIGHSPEED_CLK="NONE", p_GSR="ENABLED",
        p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_INPUT", p_MULT_BYPASS="DISABLED",
        p_RESETMODE="SYNC", **ports)
    m.d.comb += out.eq(p[:2 * width])
    return out


def fixed_take(dec, c_nz):
    """The part of a lane's `take` that needs no compare, from the decoding
    `dec` and SEL's test `c_nz` (c != 0): 1 for PASS, `c_nz` for SEL, else
    0. Registered at fetch, so `take` is one LUT after MAX/MIN's compare."""
    return dec["is_pass"] | (dec["is_sel"] & c_nz)


def _by_sign(fixed, minmax, is_max):
    """A lane's `take` (``fixed | (minmax & (lt ^ is_max))``) for each value
    of the compare's sign `lt`, 0 then 1: two bits that registers give before
    the compare ends, for :func:`~.switch.select_late`."""
    return [fixed | (minmax & (Const(x, 1) ^ is_max)) for x in (0, 1)]


def _nz_layout(regs, lanes):
    """The zero tests of a register file: a bit per register and lane."""
    return data.ArrayLayout(data.ArrayLayout(1, lanes), regs)


def _stored_layout(params, network):
    """What a PCU input FIFO stores: the network's payload, and for data
    words their zero tests (``nz``, a bit per lane), computed as the word
    arrives so that the capture cycle and stage 0's decisions made a cycle
    early read them instead of testing a word read from the FIFO."""
    base = network_layout(params, network)
    if network == "ctrl":
        return base
    fields = {name: field.shape for name, field in base}
    fields["nz"] = params.lanes if network == "vec" else 1
    return data.StructLayout(fields)


def _sources(regs, bc, acc, xl, lane):
    """An operand select's options in the order of :func:`src_code`: the
    registers R0.., then BC, ACC, XL and LANE (words, or their zero tests)."""
    return list(regs) + [bc, acc, xl, lane]


def _spread(copies, width):
    """A `width`-bit word whose run i (:func:`~.links.bit_runs`) is ``copies[i]``
    replicated: one flag, each run of bits read from its own copy."""
    return Cat(*(c.replicate(hi - lo) for c, (lo, hi) in zip(copies, bit_runs(width, len(copies)))))


def _split_mux(sels, a, b):
    """``Mux(sel, a, b)`` bit by bit, the bits split into runs (:func:`~.links.bit_runs`)
    among the copies `sels` of one select."""
    a, b = Value.cast(a), Value.cast(b)
    assert len(a) == len(b), (len(a), len(b))
    return Cat(*(Mux(sel, a[lo:hi], b[lo:hi])
                 for sel, (lo, hi) in zip(sels, bit_runs(len(a), len(sels)))))


def _slice(v, lo, hi):
    """Bits lo..hi-1 of `v`, a Const where `v` is one (so that the mux trees
    still see constant options)."""
    if isinstance(v, Const):
        return Const((v.value >> lo) & ((1 << (hi - lo)) - 1), hi - lo)
    return v[lo:hi]


def _pick_split(m, sels, options, width, name):
    """`_pick` of `options` by the copies `sels` of one select, the bits
    split into runs (:func:`~.links.bit_runs`) among them."""
    n = len(sels)
    return Cat(*(_pick(m, sel, [_slice(Value.cast(o), lo, hi) for o in options], hi - lo,
                       f"{name}_{i}" if n > 1 else name)
                 for i, (sel, (lo, hi)) in enumerate(zip(sels, bit_runs(width, n)))))


def _pick(m, sel, options, width, name):
    """A mux of `options` (Values) by `sel`; codes past the end give 0.

    Built as a binary tree on the bits of `sel` (:func:`~.switch.mux_tree`):
    Yosys/ABC map that to about a third fewer ECP5 LUTs than the ``$pmux`` a
    ``Switch`` becomes, and when synthesizing for ECP5 the groups of signal
    options become LUT4/PFUMX/L6MUX21 cells (another third fewer)."""
    out = Signal(width, name=name)
    m.d.comb += out.eq(mux_tree(sel, options, m=m, name=name))
    return out


class PCU(wiring.Component):
    """Pattern compute unit (Plasticine's PCU): SIMD lanes x pipelined stages
    with a counter chain, lane accumulators, a cross-lane reduction butterfly,
    token control and a special-function tail. The programming model is in
    the module docstring; the golden model is :class:`tessera.sim.pcu_model.PCUModel`.
    """

    kind = "pcu"

    def __init__(self, params: FabricParams):
        _check_params(params)
        self.params = params
        members = unit_signature_members(params, pcu_config_layout(params))
        members.update(perf_active=Out(1), perf_starved=Out(1), perf_stalled=Out(1))
        super().__init__(members)

    @staticmethod
    def config_layout(params: FabricParams) -> data.StructLayout:
        return pcu_config_layout(params)

    @staticmethod
    def pass_config(params: FabricParams, network: str, sel: int) -> dict:
        """Configuration that forwards input `sel` of `network` to output 0."""
        if network not in NETWORKS:
            raise ValueError(f"unknown network {network!r}; expected one of {NETWORKS}")
        n_in, _ = unit_port_counts(params, network)
        if not 0 <= sel < n_in:
            raise ValueError(f"PCU {network} input {sel} does not exist ({n_in} inputs)")
        return {"bypass": {network: {"en": 1, "sel": sel}}}

    @staticmethod
    def latency(params: FabricParams) -> int:
        """Cycles from a firing to its outputs entering the output queues: the
        capture cycle, then the stages (:func:`stage_latency`) and the tail."""
        return (1 + sum(stage_latency(params, k) for k in range(params.stages))
                + (SFU_LATENCY if params.pcu_sfu else 0))

    @staticmethod
    def out_depth(params: FabricParams) -> int:
        """Words per output queue: a firing reserves its slot `latency` cycles
        before the word arrives, and a freed slot takes 4 more cycles to
        become a credit again (queue write, queue output register, the
        consumer's read, the credit flag), so this many credits keep the PCU
        firing every cycle under continuous flow."""
        return PCU.latency(params) + 4

    def elaborate(self, platform):
        m = Module()
        p = self.params
        S, L, C, NR = p.stages, p.lanes, p.counters, p.pcu_regs
        W = p.word_width
        n_in = {net: unit_port_counts(p, net)[0] for net in NETWORKS}
        n_out = {net: unit_port_counts(p, net)[1] for net in NETWORKS}
        nvi, nsi, nci = n_in["vec"], n_in["scal"], n_in["ctrl"]

        # -- the configuration, registered --------------------------------------------------
        # The PCU acts on a registered copy of `config` (unit.settled_config):
        # any change holds it cleared (counter chain, token counters) for two
        # cycles while the values derived from it in registers settle.
        # Registers decoded from the configuration (two levels at most: a
        # decode, then its per-lane copies) load only while it settles; they
        # hold still while the unit runs (a simulator then skips them). For
        # place and route (LANE_COPIES) each stage, and each lane of a stage,
        # has its own copy of the settle flag (`_static`'s group), so that no
        # flop enables every decoded register.
        self._quiet = {}
        if LANE_COPIES.get():
            for k in range(S):
                self._quiet[(k, None)] = Signal(name=f"s{k}_quiet_rep")
                for lane in range(L):
                    self._quiet[(k, lane)] = Signal(name=f"s{k}_l{lane}_quiet_rep")
        # `run` (settled and enabled) is a flop of its own (unit.settled_config);
        # for place and route each copy of the firing decision has its own
        # copy, and the last one clears the control (counters, tokens).
        n_runs = FIRE_GROUPS + 1 if LANE_COPIES.get() else 1
        runs = [Signal(name=f"run{g}_rep" if n_runs > 1 else "run") for g in range(n_runs)]
        cfg, quiet = settled_config(m, self.config, quiet_copies=self._quiet.values(),
                                    runs=runs, run_enable=lambda c: c.en)
        self._quiet[None] = quiet
        run = runs[-1]
        clear = ~run

        # -- input FIFOs and bypass ------------------------------------------------
        fifos = {}
        for net in NETWORKS:
            fifos[net] = []
            for j in range(n_in[net]):
                # Vector and scalar inputs are read combinationally (the capture
                # cycle registers what a firing reads): a pop moves a pointer, not
                # a load enable on every bit of the head, and the ring's
                # registered flags let the firing flags be computed ahead
                # (`ahead_flag`). (For place and route, each lane's slice of a
                # vector FIFO has its own copy of the read pointer.) Control
                # inputs feed the token counters and stay registered.
                copies = p.lanes if net == "vec" and LANE_COPIES.get() else 1
                q = StreamFIFO(_stored_layout(p, net), p.fifo_depth, registered=(net == "ctrl"),
                               read_copies=copies)
                m.submodules[f"in_{net}{j}"] = q
                port = getattr(self, f"i_{net}")[j]
                if net == "ctrl":
                    wiring.connect(m, wiring.flipped(port), q.i)
                else:
                    # A data word is stored with its zero tests (a bit per
                    # lane), taken from the link's register as it arrives.
                    words = ([port.payload.data[lane] for lane in range(L)] if net == "vec"
                             else [port.payload.data])
                    m.d.comb += [q.i.valid.eq(port.valid), port.ready.eq(q.i.ready),
                                 q.i.payload.data.eq(port.payload.data),
                                 q.i.payload.last.eq(port.payload.last),
                                 q.i.payload.nz.eq(Cat(*(w.any() for w in words)))]
                fifos[net].append(q)

        def bypassed_in(net, j):
            b = getattr(cfg.bypass, net)
            return b.en & (b.sel == j)

        def reg(value, name):
            return self._static(m, value, 1, name)

        def next_of(r, value):
            """What `r` = reg(value) holds in the next cycle."""
            return Mux(quiet, r, value)

        # The enables of the inputs, decoded from the configuration into
        # registers (and what they hold next, for the firing flags).
        enables, enables_next = {}, {}
        for net in NETWORKS:
            for j in range(n_in[net]):
                value = getattr(cfg, f"{net}_in")[j].en & ~bypassed_in(net, j)
                enables[(net, j)] = reg(value, f"{net}_in{j}_en")
                enables_next[(net, j)] = next_of(enables[(net, j)], value)

        def enabled_in(net, j):
            return enables[(net, j)]

        # -- counter chain ------------------------------------------------------------
        # Its "last value" flags are registers (hw/counters.py): no adder between
        # the chain and the firing decision.
        # The firing decision (below), in FIRE_GROUPS copies for place and
        # route, each the AND of its own copies of the firing flags: `fire`
        # (tokens, outputs, the pipeline), `fire_pop` (the input FIFOs' pops)
        # and `fire_step` (the counter chain's step).
        groups = FIRE_GROUPS if LANE_COPIES.get() else 1
        fires = [Signal(name=f"fire{g}_rep" if groups > 1 else "fire") for g in range(groups)]
        fire, fire_pop, fire_step = fires[0], fires[min(1, groups - 1)], fires[-1]
        m.submodules.chain = chain = CounterChain(C, COUNTER_WIDTH)
        m.d.comb += [chain.config.eq(cfg.counters), chain.clear.eq(clear),
                     chain.step.eq(fire_step)]
        fm = chain.first    # counters 0..l at their first value
        lm = chain.wrap     # counters 0..l at their last value
        val = chain.values

        def at_level(level, mask):
            return Cat(Const(1, 1), mask).bit_select(level, 1)

        # -- the firing flags ----------------------------------------------------------
        # The PCU fires when it runs and every input, token dependency and
        # output it needs holds a word, a token or a credit. Each such test,
        # with its static enable folded in, is one register computed a cycle
        # ahead (`ahead_flag`), so the firing decision is an AND of about a
        # dozen flops and its only fan-in from the next state is the choice
        # between "fired" and "held" in front of each flag.
        oks = [[] for _ in fires]         # per copy of the decision: its flags

        def firing_flag(name, **kw):
            """One flag (`ahead_flag`) per copy of the firing decision, each
            updated by its own copy; returns the first."""
            for g, f in enumerate(fires):
                oks[g].append(ahead_flag(m, f"{name}{g}_rep" if groups > 1 else name,
                                         fire=f, **kw))
            return oks[0][-1]
        ok_out = []

        # -- token counters (per dependency; start at `init`: N-buffer credits) -----------
        tok_need = Signal(max(nci, 1))
        for j in range(nci):
            q = fifos["ctrl"][j].o
            take = Signal(name=f"tok{j}_take")
            used = Signal(name=f"tok{j}_used")
            _, nz, full, many = flagged_counter(m, f"tok{j}", TOKEN_MAX, up=take, down=used,
                                                load=(clear, cfg.ctrl_in[j].init))
            # Whether the next firing starts a group at the dependency's level,
            # in a register (from the chain's flags after a step, loaded on
            # each firing), so no level select lies in the firing decision.
            starts = Signal(init=1, name=f"tok{j}_starts")
            with m.If(clear):
                m.d.sync += starts.eq(1)           # a cleared chain is at its first values
            with m.Elif(fire):
                m.d.sync += starts.eq(at_level(cfg.ctrl_in[j].level, chain.first_next))
            m.d.comb += [
                q.ready.eq(run & enabled_in("ctrl", j) & ~full),
                take.eq(q.ready & q.valid),
                tok_need[j].eq(enabled_in("ctrl", j) & starts),
                used.eq(fire & tok_need[j]),
            ]
            en_next = enables_next[("ctrl", j)]
            level = cfg.ctrl_in[j].level
            firing_flag(
                f"tok{j}_ok", nz=nz, many=many, up=take, take=tok_need[j],
                need_fire=en_next & at_level(level, chain.first_next),
                need_hold=en_next & starts,
                load=(clear, ~en_next | (cfg.ctrl_in[j].init != 0)))

        # -- outputs: queues with credits ---------------------------------------------
        # Every output is a queue of `out_depth` words. A firing reserves a slot in
        # each queue its iteration will write (known at the firing: the output's
        # level and the chain's flags), and the pipeline never stalls: the
        # firing decision is the only enable. A slot is released when the word
        # leaves the queue; the PCU fires only while every enabled output holds
        # a credit (a registered flag).
        depth = PCU.out_depth(p)
        out_q = {}
        emits = []           # per output (in order): does this firing write it
        for net in NETWORKS:
            out_q[net] = []
            for k in range(n_out[net]):
                ocfg = getattr(cfg, f"{net}_out")[k]
                q = StreamFIFO(network_layout(p, net), depth)
                m.submodules[f"out_{net}{k}"] = q
                out_q[net].append(q)
                value = ocfg.en & ~getattr(cfg.bypass, net).en if k == 0 else ocfg.en
                en = reg(value, f"out_{net}{k}_en")
                emit = Signal(name=f"out_{net}{k}_emit")
                freed = Signal(name=f"out_{net}{k}_freed")
                m.d.comb += [emit.eq(en & at_level(ocfg.level, lm)),
                             freed.eq(q.o.valid & q.o.ready)]
                emits.append(emit)
                _, credit, _, many = flagged_counter(m, f"out_{net}{k}_credits", depth,
                                                     up=freed, down=fire & emit, reset=depth)
                en_next = next_of(en, value)
                ok_out.append(firing_flag(f"out_{net}{k}_ok", nz=credit, many=many, up=freed,
                                          take=emit, need_fire=en_next, need_hold=en_next))

        # -- issue --------------------------------------------------------------------
        # An enabled input must hold a word at every firing; the firing at the
        # end of a group at the input's level pops it.
        for net, n in (("vec", nvi), ("scal", nsi)):
            for j in range(n):
                q = fifos[net][j]
                ends = Signal(name=f"{net}_in{j}_ends")
                pushed = Signal(name=f"{net}_in{j}_pushed")
                en_next = enables_next[(net, j)]
                m.d.comb += [
                    ends.eq(enabled_in(net, j) & at_level(getattr(cfg, f"{net}_in")[j].level, lm)),
                    pushed.eq(q.i.valid & q.i.ready),
                    q.o.ready.eq(fire_pop & ends),
                ]
                firing_flag(f"{net}_in{j}_ok", nz=q.o.valid, many=q.many, up=pushed, take=ends,
                            need_fire=en_next, need_hold=en_next)
        out_ok = Cat(*ok_out).all()
        for f, flags, r in zip(fires, oks, runs):
            m.d.comb += f.eq(r & Cat(*flags).all())

        # -- pipeline ---------------------------------------------------------------
        # Free-running: every stage register loads every cycle, and a valid bit
        # travels with each iteration (only the accumulators load on it).
        n_outs = len(emits)
        file_layout = data.ArrayLayout(data.ArrayLayout(W, L), NR)
        ctx_layout = data.StructLayout({
            "scal": data.ArrayLayout(W, max(nsi, 1)),
            "ctr": data.ArrayLayout(COUNTER_WIDTH, C),
            "fm": C, "lm": C,
            "lasts": max(nvi + nsi, 1),
            "emit": max(n_outs, 1),
        })
        file0 = Signal(file_layout)
        ctx0 = Signal(ctx_layout)
        for j in range(min(NR, nvi)):
            q = fifos["vec"][j].o
            for lane in range(L):
                m.d.comb += file0[j][lane].eq(Mux(enabled_in("vec", j), q.payload.data[lane], 0))
        for j in range(nsi):
            q = fifos["scal"][j].o
            m.d.comb += ctx0.scal[j].eq(Mux(enabled_in("scal", j), q.payload.data, 0))
        lasts = [enabled_in("vec", j) & fifos["vec"][j].o.payload.last for j in range(nvi)]
        lasts += [enabled_in("scal", j) & fifos["scal"][j].o.payload.last for j in range(nsi)]
        m.d.comb += [ctx0.fm.eq(fm), ctx0.lm.eq(lm), ctx0.lasts.eq(Cat(*lasts)),
                     ctx0.emit.eq(Cat(*emits))]
        for i in range(C):
            m.d.comb += ctx0.ctr[i].eq(val[i])

        # -- the capture cycle ------------------------------------------------------------
        # A firing registers what its iteration reads of the unit's inputs (the
        # vector and scalar heads, the counter values and flags) and, like the
        # stage before any other stage, decides what stage 0 reads through
        # configuration selects (`_ahead`). Stage 0 then fetches from registers
        # as every other stage does: no FIFO read and no broadcast select lie in
        # front of its operand selects.
        # Stage 0's early decisions read the heads as they are, with the
        # inputs' enables folded into their selects (`_ahead`'s `heads`).
        head_file = [[fifos["vec"][j].o.payload.data[lane] if j < nvi else Const(0, W)
                      for lane in range(L)] for j in range(NR)]
        head_nz = [[fifos["vec"][j].o.payload.nz[lane] if j < nvi else Const(0, 1)
                    for lane in range(L)] for j in range(NR)]
        heads = {
            "file_en": [enabled_in("vec", j) if j < nvi else Const(1, 1) for j in range(NR)],
            "scal": [fifos["scal"][j].o.payload.data for j in range(nsi)],
            "scal_nz": [fifos["scal"][j].o.payload.nz for j in range(nsi)],
            "scal_en": [enabled_in("scal", j) for j in range(nsi)],
        }
        pre = self._ahead(m, cfg, 0, fire, ctx0, head_file, head_nz, heads=heads)
        v_in = _later(m, fire, 1, "cap_v")
        f_in = _later(m, file0, file_layout, "cap_file")
        c_in = _later(m, ctx0, ctx_layout, "cap_ctx")
        nz0 = Signal(_nz_layout(NR, L))
        for j in range(min(NR, nvi)):
            for lane in range(L):
                m.d.comb += nz0[j][lane].eq(enabled_in("vec", j)
                                            & fifos["vec"][j].o.payload.nz[lane])
        nz_in = _later(m, nz0, _nz_layout(NR, L), "cap_nz")
        for k in range(S):
            v_in, f_in, c_in, nz_in, pre = self._stage(m, cfg, k, v_in, f_in, c_in, nz_in, pre,
                                                       file_layout, ctx_layout)

        # -- tail: outputs' values (+ special functions) -------------------------------
        t_v, t_file, t_ctx = v_in, f_in, c_in
        sfu_out = [Const(0, W) for _ in range(L)]
        tail_depth = 0
        if p.pcu_sfu:
            tail_depth = SFU_LATENCY
            sfu_out = []
            for lane in range(L):
                u = SFULane()
                m.submodules[f"sfu{lane}"] = u
                m.d.comb += [u.en.eq(1), u.op.eq(cfg.tail.op), u.shift.eq(cfg.tail.shift),
                             u.a.eq(_pick(m, cfg.tail.src, [t_file[j][lane] for j in range(NR)],
                                          W, f"sfu{lane}_a"))]
                sfu_out.append(u.r)

        def delayed(value, name):
            for d in range(tail_depth):
                r = Signal.like(value, name=f"{name}_d{d}")
                m.d.sync += r.eq(value)
                value = r
            return value

        f_v = delayed(t_v, "tail_v")
        f_lm = delayed(t_ctx.lm, "tail_lm")
        f_lasts = delayed(t_ctx.lasts, "tail_lasts")
        f_emit = delayed(t_ctx.emit, "tail_emit")
        n_last = 1 + C + nvi + nsi
        last_bits = Cat(Const(0, 1), f_lm, f_lasts[:nvi + nsi], Const(0, 1))

        def last_of(code):
            return last_bits.bit_select(code, 1) if n_last > 1 else Const(0, 1)

        # Each output writes its queue when its iteration reserved a slot there
        # (the emit bit that travelled with it): every reservation is one write.
        index = 0
        for net in NETWORKS:
            for k in range(n_out[net]):
                ocfg = getattr(cfg, f"{net}_out")[k]
                q = out_q[net][k]
                m.d.comb += [
                    q.i.valid.eq(f_v & f_emit[index]),
                    q.i.payload.last.eq(last_of(ocfg.last)),
                ]
                index += 1
                if net not in ("vec", "scal"):
                    continue
                # The output's selects, decoded into registers (for place and
                # route, a copy per lane: `_rep`), so that no configuration
                # flop far away drives the data path into the queue.
                src_shape = Value.cast(ocfg.src).shape()
                srcs = self._lanes(
                    lambda lane: self._static(m, ocfg.src, src_shape,
                                              f"out_{net}{k}_l{lane}_src_rep"),
                    lambda: self._static(m, ocfg.src, src_shape, f"out_{net}{k}_src"))
                tail = self._static(m, ocfg.src == NR, 1, f"out_{net}{k}_tail")
                regs = [_pick(m, srcs[lane], [t_file[j][lane] for j in range(NR)],
                              W, f"out_{net}{k}_reg{lane}") for lane in range(L)]
                if net == "vec":
                    for lane in range(L):
                        r = delayed(regs[lane], f"out_vec{k}_l{lane}")
                        m.d.comb += q.i.payload.data[lane].eq(Mux(tail, sfu_out[lane], r))
                else:
                    lane_sel = self._static(m, ocfg.lane, Value.cast(ocfg.lane).shape(),
                                            f"out_scal{k}_lane_sel")
                    r = delayed(_pick(m, lane_sel, regs, W, f"out_scal{k}_lane"), f"out_scal{k}")
                    sfu = _pick(m, lane_sel, sfu_out, W, f"out_scal{k}_sfu")
                    m.d.comb += q.i.payload.data.eq(Mux(tail, sfu, r))

        # -- output ports (output 0 may be a bypass) -----------------------------------
        for net in NETWORKS:
            outs = getattr(self, f"o_{net}")
            b = getattr(cfg.bypass, net)
            for k in range(n_out[net]):
                oq = out_q[net][k]
                if k == 0:
                    src = fifos[net]
                    sel_valid = _pick(m, b.sel, [q.o.valid for q in src], 1, f"byp_{net}_valid")
                    width = Shape.cast(network_layout(p, net)).width
                    sel_payload = _pick(m, b.sel, [q.o.payload.as_value()[:width] for q in src],
                                        width, f"byp_{net}_payload")
                    with m.If(b.en):
                        m.d.comb += [outs[0].valid.eq(sel_valid),
                                     outs[0].payload.eq(sel_payload),
                                     oq.o.ready.eq(0)]
                        for j, q in enumerate(src):
                            with m.If(b.sel == j):
                                m.d.comb += q.o.ready.eq(outs[0].ready)
                    with m.Else():
                        wiring.connect(m, oq.o, wiring.flipped(outs[0]))
                else:
                    wiring.connect(m, oq.o, wiring.flipped(outs[k]))

        # -- performance counters' events ------------------------------------------------
        m.d.comb += [
            self.perf_active.eq(fire),
            self.perf_stalled.eq(run & ~out_ok),
            self.perf_starved.eq(run & out_ok & ~fire),
        ]
        return m

    # ---------------------------------------------------------------------------------
    def _static(self, m, value, shape, name, group=None):
        """A register decoded from the configuration: it loads `value` only
        while the configuration settles (see `_quiet` in elaborate). `group`
        names its stage, ``(k, None)``, or a lane of it, ``(k, lane)``: the
        settle flag's copy that enables it under LANE_COPIES."""
        r = Signal(shape, name=name)
        with m.If(~self._quiet.get(group, self._quiet[None])):
            m.d.sync += r.eq(value)
        return r

    def _bc_options(self, st, ctx, scal=None):
        """A stage's broadcast options in `bc_code` order: its constant, the
        scalar inputs (`scal`, else the context's) and the counter values."""
        p = self.params
        if scal is None:
            scal = [ctx.scal[j] for j in range(p.unit_scal_in)]
        return [st.const] + list(scal) + [ctx.ctr[i] for i in range(p.counters)]

    def _broadcast(self, m, st, ctx, name):
        """A stage's broadcast operand, chosen by `st.bc` from the context `ctx`."""
        return _pick(m, st.bc, self._bc_options(st, ctx), self.params.word_width, name)

    def _lanes(self, copy, shared):
        """Per lane, what the lane reads: for place and route (LANE_COPIES)
        its own copy, `copy(lane)` (flops named ``*_rep``, which hw/synth.py
        keeps apart), so that no flop drives every lane; otherwise `shared()`,
        one for every lane."""
        if LANE_COPIES.get():
            return [copy(lane) for lane in range(self.params.lanes)]
        return [shared()] * self.params.lanes

    def _group_start(self, m, k, st, v, ctx):
        """Stage k's `load_init`, per lane: iteration `v` (with context `ctx`)
        starts a group of the stage's acc_level, a cycle later, in registers
        (per-lane copies under LANE_COPIES: the flag drives the clock enables
        of every accumulator copy of a lane)."""
        C = self.params.counters
        acc_lvl = self._static(m, Const(1, C + 1) << st.acc_level, C + 1, f"s{k}_acc_lvl",
                               group=(k, None))
        start = Signal(name=f"s{k}_group_start")
        m.d.comb += start.eq(v & (acc_lvl & Cat(Const(1, 1), ctx.fm)).any())
        return self._lanes(lambda lane: _later(m, start, 1, f"s{k}_l{lane}_load_init_rep"),
                           lambda: _later(m, start, 1, f"s{k}_load_init"))

    def _ahead(self, m, cfg, k, v, ctx, file, nz, heads=None, ctx_before=None):
        """What stage k reads through configuration selects, decided a cycle
        early, into registers, from the iteration (`v`, `ctx`, `file` and its
        zero tests `nz`) that enters the stage's fetch cycle next: its
        broadcast operand and that operand's zero test (``"bc"``; for k >= 1
        the broadcast is chosen from `ctx_before`, the same context a cycle
        earlier); each lane's operand ``a`` (``"a"``; 0 where ``a`` is ACC
        or XL) and its zero test (``"a_nz"``), so that ``XL``, the partner's
        ``a``, and what SEL's test reads of it are registers too, and the
        wire between two lanes starts at one instead of after the partner's
        operand select; and, unless the stage has a multiplier (which
        decides it from its own inputs), its `load_init`.

        For stage 0 the iteration is the one being fired, read from the
        input FIFOs: `file` and `nz` are the vector FIFOs' heads as read,
        unmasked, and `heads` gives the scalar heads (``"scal"``) with their
        stored zero tests and every input's enable. A select that would read
        a disabled input (whose value is 0) is then decoded into a register
        as a code past the options' end, which reads 0: no enable's mask and
        no 32-bit zero test lie between a FIFO's read and these registers."""
        p = self.params
        L, NR, W = p.lanes, p.pcu_regs, p.word_width
        st = cfg.stages[k]
        a_shape = Value.cast(st.a).shape()
        if (heads is None) == (ctx_before is None):
            raise ValueError("_ahead needs the FIFO heads (stage 0) or ctx_before (k >= 1)")
        if heads is None:
            # The broadcast is chosen a cycle earlier still, from `ctx_before`
            # (the context a cycle before `ctx`, which the stage before passes
            # through unchanged), into a register: its 32-bit zero test and
            # operand a's select then read a flop, not the broadcast's select.
            bc = _later(m, self._broadcast(m, st, ctx_before, f"s{k}_bc_early_next"), W,
                        f"s{k}_bc_early")
            bc_nz = bc.any()
            a_code = st.a
        else:
            nsi, C = p.unit_scal_in, p.counters
            opts = self._bc_options(st, ctx, heads["scal"])
            off = Const(len(opts), range(len(opts) + 1))        # reads 0
            masked = Const(0, 1)
            for j in range(nsi):
                masked = masked | ((st.bc == 1 + j) & ~heads["scal_en"][j])
            bc_sel = self._static(m, Mux(masked, off, st.bc), off.shape(), f"s{k}_bc_sel",
                                  group=(k, None))
            bc = _pick(m, bc_sel, opts, W, f"s{k}_bc_next")
            bc_nz = _pick(m, bc_sel, [st.const.any()] + heads["scal_nz"]
                          + [ctx.ctr[i].any() for i in range(C)], 1, f"s{k}_bc_nz_next")
            a_off = Const(NR + 4, range(NR + 5))                 # reads 0
            masked = Const(0, 1)
            for j in range(NR):
                masked = masked | ((st.a == j) & ~heads["file_en"][j])
            a_code = Mux(masked, a_off, st.a)
            a_shape = a_off.shape()
        pre = {"bc": (_later(m, bc, W, f"s{k}_bc"), _later(m, bc_nz, 1, f"s{k}_bc_nz"))}
        # Operand a, by the lane's select (its own copy for place and route).
        if heads is None:
            shared = lambda: st.a
        else:
            a_early = self._static(m, a_code, a_shape, f"s{k}_asel_early", group=(k, None))
            shared = lambda: a_early
        a_sel = self._lanes(
            lambda lane: [self._static(m, a_code, a_shape, f"s{k}_l{lane}_asel{i}_early_rep",
                                       group=(k, lane)) for i in range(SELECT_COPIES)],
            lambda: [shared()])
        zero = Const(0, W)
        pre["a"] = [_later(m, _pick_split(m, a_sel[lane],
                                          _sources((file[j][lane] for j in range(NR)), bc, zero,
                                                   zero, Const(lane, W)), W, f"s{k}_a{lane}_next"),
                           W, f"s{k}_a{lane}") for lane in range(L)]
        # (where a is BC, its zero test is the registered broadcast's: the
        # select below reads 0 for BC, so that the broadcast's 32-bit zero
        # test ends at a register and is not also a leg of this select)
        pre["a_nz"] = [_later(m, _pick(m, a_sel[lane][0],
                                       _sources((nz[j][lane] for j in range(NR)), Const(0, 1),
                                                Const(0, 1), Const(0, 1),
                                                Const(int(lane != 0), 1)), 1,
                                       f"s{k}_anz{lane}_next"),
                              1, f"s{k}_anz{lane}") for lane in range(L)]
        if k not in mul_stages(p):
            pre["load_init"] = self._group_start(m, k, st, v, ctx)
        return pre

    def _stage(self, m, cfg, k, v_in, f_in, c_in, nz_in, pre, file_layout, ctx_layout):
        """Stage k: fetch operands into registers, execute, and register the
        result into the stage's pipeline registers. The registers load every
        cycle; the accumulators only for valid iterations (`v_in` travels
        with the iteration). `nz_in` holds the zero tests of `f_in`'s words
        (``nz_in[j][lane]`` = ``f_in[j][lane] != 0``), registered beside
        them. `pre` holds what the stage before decided a cycle early for
        this one, in registers (:meth:`_ahead`). The stage returns the next
        stage's (None after the last)."""
        p = self.params
        L, NR, W = p.lanes, p.pcu_regs, p.word_width
        st = cfg.stages[k]
        has_mul = k in mul_stages(p)

        # Stage-wide decoding, shared by the lanes. The broadcast operand was
        # chosen a cycle early from the same context (`_ahead`), so no
        # configuration select lies on the fetch path.
        bc, bc_nz = pre["bc"]
        dec = self._decode(m, k, st, has_mul)

        # Each lane's accumulator: its previous result (a register of its own
        # rather than a read of register `dst`: no mux), or the initial value on
        # the first iteration of an acc_level group.
        accs = [Signal(W, name=f"s{k}_acc{lane}") for lane in range(L)]

        def mux(sels, lane, name, acc, xl):
            opts = _sources((f_in[j][lane] for j in range(NR)), bc, acc, xl, Const(lane, W))
            return _pick_split(m, sels, opts, W, f"s{k}_{name}{lane}")

        # The selects of operands b and c (a: `_ahead`) come from the configuration; for place and route
        # (LANE_COPIES) each lane reads its own copies (`SELECT_COPIES`, each
        # for a run of the bits), as it does the decoded control below, so
        # that no configuration flop drives every lane or a whole word.
        # (A stage without a multiplier selects only c's zero test: one copy.)
        selects = self._lanes(
            lambda lane: {x: [self._static(m, getattr(st, x), Value.cast(getattr(st, x)).shape(),
                                           f"s{k}_l{lane}_{x}sel{i}_rep", group=(k, lane))
                              for i in range(SELECT_COPIES if has_mul or x == "b" else 1)]
                          for x in "bc"},
            lambda: {x: [getattr(st, x)] for x in "bc"})

        # Operand a (0 if it is ACC or XL) was selected a cycle early into a
        # register (`_ahead`); XL is the partner lane's.
        zero = Const(0, W)
        a_base = pre["a"]
        partner = [lane ^ (1 << xl_level(p, k)) for lane in range(L)]
        xl = [a_base[q] if q < L else zero for q in partner]
        if not has_mul:
            # What SEL's test reads of XL: the zero test of the partner's
            # operand a, selected with it a cycle early (`_ahead`), or the
            # broadcast's where a is BC.
            a_bc = self._static(m, st.a == NR, 1, f"s{k}_a_bc", group=(k, None))
            xl_nz = [(pre["a_nz"][q] | (a_bc & bc_nz)) if q < L else Const(0, 1)
                     for q in partner]

        # Fetch cycle: the operands (and everything travelling with them) into
        # registers (an operand that is ACC: a copy of the accumulator, below).
        e_file = _later(m, f_in, file_layout, f"s{k}_ffile")
        e_ctx = _later(m, c_in, ctx_layout, f"s{k}_fctx")
        e_nz = _later(m, nz_in, _nz_layout(NR, L), f"s{k}_fnz")

        v_src = v_in
        if has_mul:
            # A multiplier stage has a multiply cycle (the DSP, between its
            # input and output registers) and a round cycle (the product out of
            # the DSP, QMUL's rounding) between fetch and execute: what travels
            # with the iteration waits two cycles beside it.
            v_src = _later(m, v_src, 1, f"s{k}_fv")
            m_ctx = e_ctx
            for c in "mr":
                e_file = _later(m, e_file, file_layout, f"s{k}_{c}file")
                e_ctx = _later(m, e_ctx, ctx_layout, f"s{k}_{c}ctx")
                e_nz = _later(m, e_nz, _nz_layout(NR, L), f"s{k}_{c}nz")
            load_init = self._group_start(m, k, st, v_src, m_ctx)
            v_src = _later(m, v_src, 1, f"s{k}_mv")
        else:
            load_init = pre["load_init"]
        e_v = _later(m, v_src, 1, f"s{k}_ev")
        # The accumulators' initial value: registered, like the decoding.
        init = mux_tree(st.acc_init, [Const(0, W), Const(1 << (W - 1), W),
                                      Const((1 << (W - 1)) - 1, W), st.const])
        # The execute cycle's control and initial value, copied per lane for
        # place and route (LANE_COPIES; `_rep`: hw/synth.py keeps the copies
        # apart), so that no flop drives every lane.
        own = set(dec) - ({"c_early", "qmul", "mulop", "c_early_acc"} if not has_mul else set()) \
                       - ({"rsa", "acc_a"} if not p.pcu_rescale else set())
        lane_v = self._lanes(lambda lane: _later(m, v_src, 1, f"s{k}_l{lane}_v_rep"), lambda: e_v)
        def lane_copies(lane):
            ld = {name: self._static(m, dec[name], dec[name].shape(),
                                     f"s{k}_l{lane}_{name}_rep", group=(k, lane))
                  for name in sorted(own - set(RUN_FLAGS))}
            for name in sorted(own & set(RUN_FLAGS)):
                ld[name + "_runs"] = [self._static(m, dec[name], 1, f"s{k}_l{lane}_{name}{i}_rep",
                                                   group=(k, lane))
                                      for i in range(SELECT_COPIES)]
                ld[name] = ld[name + "_runs"][0]
            return ld
        lane_dec = self._lanes(lane_copies,
                               lambda: {**dec, **{f + "_runs": [dec[f]] for f in RUN_FLAGS}})
        lane_init = self._lanes(
            lambda lane: self._static(m, init, W, f"s{k}_l{lane}_init_rep", group=(k, lane)),
            lambda: self._static(m, init, W, f"s{k}_init", group=(k, None)))
        # An accumulator register holds what the next executed iteration reads:
        # the initial value is loaded when that iteration (`v_src`) starts a
        # group, so the execute cycle reads the register itself, with no
        # select in front of the ALU. Whether it does (`load_init`, above) is
        # decided a cycle earlier, into registers: in a multiplier stage from
        # the iteration in its multiply cycle, otherwise by the stage before
        # (`pre`).

        # An operand that is ACC is not selected in the execute cycle: the
        # operand's register is itself a copy of the accumulator (it loads what
        # the accumulator loads; `followers`), so the execute cycle reads a
        # register either way and an accumulation's loop is the ALU alone.
        followers = [[] for _ in range(L)]   # per lane: (register, is-ACC flag, else-value)
        ops = []
        for lane in range(L):
            fa = a_base[lane]
            fb = mux(selects[lane]["b"], lane, "b", zero, xl[lane])
            regs = [Signal(W, name=f"s{k}_f{x}{lane}") for x in "ab"]
            if has_mul:
                fc = mux(selects[lane]["c"], lane, "c", zero, xl[lane])
                regs.append(Signal(W, name=f"s{k}_fc{lane}"))
            else:
                # Without a multiplier, operand c only feeds SEL's test c != 0:
                # fetch that one bit instead of a 32-bit operand, selected
                # from the sources' zero tests, which the transit cycle (or
                # the capture cycle) registered: no 32-bit test lies on the
                # fetch path.
                fc = _pick(m, selects[lane]["c"][0],
                           _sources((nz_in[j][lane] for j in range(NR)), bc_nz, Const(0, 1),
                                    xl_nz[lane], Const(int(lane != 0), 1)),
                           1, f"s{k}_fcnz{lane}")
            prod = early = qsum = None
            ld = lane_dec[lane]
            flags = [ld["a_acc"], ld["b_acc"]]
            qsum_next = None
            if has_mul:
                # The multiply cycle: the product of the fetched operands (so
                # the multiplier reads ACC as 0) forms in the DSP, between its
                # registers, while the fetched operands wait beside it. The
                # round cycle: the product out of the DSP into a register;
                # operand c, for MAC only (its addend; 0 for the other ops),
                # into a register that is ACC's copy when c is ACC; SEL's test
                # c != 0 of the fetched c (so SEL reads ACC as 0), registered;
                # and QMUL's rounded sum, product + 2^(shift-1) (its addend is
                # never ACC), so that QMUL's execute cycle only shifts and
                # MUL/MAC's only adds.
                m.d.sync += [r.eq(v) for r, v in zip(regs, (fa, fb, fc))]
                mw = p.mul_width
                mw1 = max(2 * mw, W) + 1
                product = _registered_multiply(m, fa, fb, regs[0], regs[1], mw, f"s{k}_mul{lane}")
                regs = [_later(m, r, W, f"{r.name}_d") for r in regs]
                takes = self._take_inputs(m, k, lane, dec, ld, fixed_take(ld, regs[2].any()))
                prod = _later(m, product, signed(2 * mw), f"s{k}_prod{lane}")
                rnd = ((Const(1, 2 * mw + 1) << ld["shift"]) >> 1)[:2 * mw + 1]
                qsum_next = Signal(signed(mw1), name=f"s{k}_qsum{lane}_d")
                m.d.comb += qsum_next.eq(product + rnd)
                early = Signal(mw1, name=f"s{k}_addend{lane}")
                followers[lane].append((early, ld["c_early_acc"],
                                        Mux(ld["c_early"], regs[2], 0)))
                # what a and b load when not ACC: the fetched operands, delayed
                ab_src, regs = regs[:2], [Signal.like(r, name=f"{r.name}_m") for r in regs[:2]]
            else:
                ab_src = (fa, fb)
                takes = self._take_inputs(m, k, lane, dec, ld, fixed_take(ld, fc))
            followers[lane] += zip(regs[:2], flags, ab_src)
            a, b = regs[0], regs[1]
            sh = self._shifter_inputs(ld, a, b, has_mul)
            share_qmul = self._qmul_shifts(has_mul)
            if LANE_COPIES.get():
                # For place and route, the shifter reads registers of its own,
                # which load its input word and amount already selected (SHL's
                # bit reversal, QMUL's rounded sum and static amount) from the
                # fetched operands: the operand registers' fanout and the
                # selects were the first and longest hops of the shifter's
                # paths. No shift reads ACC (`ACC_OPERAND_OPS`), so they hold
                # the fetched operands (ACC fetched as 0), never the result.
                sh_word, sh_amt = self._shifter_inputs(ld, *ab_src, has_mul)
                if share_qmul:
                    sh_word = _split_mux(ld["qmul_runs"], qsum_next, sh_word[:W + 1])
                sh = (_later(m, sh_word, signed(W + 1), f"s{k}_fa{lane}_sh_rep"),
                      _later(m, sh_amt, 5, f"s{k}_fb{lane}_sh_rep"))
            if qsum_next is not None and not (LANE_COPIES.get() and share_qmul):
                qsum = _later(m, qsum_next, signed(mw1), f"s{k}_qsum{lane}")
            ops.append((a, b, takes, sh, prod, early, qsum, accs[lane]))

        # Pipeline registers of this stage: the registers passed through, and
        # each lane's result in a register of its own (`s{k}_res{lane}`). The
        # stage's write select (register `dst` takes the result) comes after
        # them: it is static, and the next stage's operand selects absorb it,
        # so the execute cycle ends at the result's register.
        o_v = Signal(name=f"s{k}_v")
        o_pass = Signal(file_layout, name=f"s{k}_pass")
        o_file = Signal(file_layout, name=f"s{k}_file")
        o_pass_nz = _later(m, e_nz, _nz_layout(NR, L), f"s{k}_pass_nz")
        o_nz = Signal(_nz_layout(NR, L), name=f"s{k}_nz")
        o_ctx = Signal(ctx_layout, name=f"s{k}_ctx")
        keeps = []
        for lane, (a, b, takes, sh, prod, early, qsum, acc_v) in enumerate(ops):
            ld = lane_dec[lane]
            r, r_acc = self._alu(m, k, lane, ld, a, b, takes, sh, prod, early, qsum, acc_v,
                                 has_mul)
            # What the lane's accumulator keeps: the result of an op that may
            # read ACC (`r_acc`, the short form of the result), or operand a
            # (a delay).
            keeps.append(Mux(ld["acc_a"], a, r_acc) if p.pcu_rescale else r_acc)
            res = Signal(W, name=f"s{k}_res{lane}")
            m.d.sync += res.eq(r)
            res_nz = res.any()
            for j in range(NR):
                m.d.comb += [o_file[j][lane].eq(Mux(ld[f"w{j}"], res, o_pass[j][lane])),
                             o_nz[j][lane].eq(Mux(ld[f"w{j}"], res_nz, o_pass_nz[j][lane]))]

        m.d.sync += [o_v.eq(e_v), o_pass.eq(e_file), o_ctx.eq(e_ctx)]
        # The transit cycle: the registers after the write select, which the
        # next stage reads. The results' paths end at `res` and the next
        # stage's fetch starts at a register, which place and route may put
        # anywhere between the two stages.
        t_v = _later(m, o_v, 1, f"s{k}_tv")
        t_file = _later(m, o_file, file_layout, f"s{k}_tfile")
        t_ctx = _later(m, o_ctx, ctx_layout, f"s{k}_tctx")
        # Their zero tests: the result's, or those that travelled with the
        # registers passed through (no 32-bit test after the write select).
        t_nz = _later(m, o_nz, _nz_layout(NR, L), f"s{k}_tnz")
        # What the next stage reads of its input registers (`t_v`, `t_ctx`)
        # through configuration selects, selected here and registered beside them.
        o_pre = (self._ahead(m, cfg, k + 1, o_v, o_ctx, o_file, o_nz, ctx_before=e_ctx)
                 if k + 1 < p.stages else None)
        for lane in range(L):
            # The accumulator itself is the follower that is always ACC.
            for reg, is_acc, value in [(accs[lane], Const(1, 1), accs[lane])] + followers[lane]:
                # One select between the result and a value known early (the
                # initial value, or the operand fetched), so the result reaches
                # the register through a single LUT.
                early_value = Signal.like(reg, name=f"{reg.name}_alt")
                m.d.comb += early_value.eq(Mux(is_acc, lane_init[lane], value))
                keep = Signal.like(reg, name=f"{reg.name}_keep")
                m.d.comb += keep.eq(keeps[lane])
                load_early = Signal(name=f"{reg.name}_ld")
                m.d.comb += load_early.eq(~is_acc | load_init[lane])
                with m.If(load_early | lane_v[lane]):
                    m.d.sync += reg.eq(mux2(load_early, keep, early_value, m=m,
                                            name=f"{reg.name}_d"))
        return t_v, t_file, t_ctx, t_nz, o_pre

    def _take_inputs(self, m, k, lane, dec, ld, fixed_next):
        """What a lane's `take` reads besides the compare: `fixed` (the part
        that needs no compare, :func:`fixed_take`), registered from
        `fixed_next`, and the MIN/MAX decoding. One triple per copy of
        `take`: for place and route (LANE_COPIES) `TAKE_COPIES`, each from
        flops of its own (``*_rep``, so that Yosys keeps the LUTs apart),
        which split the result's and the short result's 64 selects between
        them; otherwise one."""
        if not LANE_COPIES.get():
            return [(_later(m, fixed_next, 1, f"s{k}_fixed{lane}"), ld["minmax"], ld["is_max"])]
        return [(_later(m, fixed_next, 1, f"s{k}_fixed{lane}_{j}_rep"),
                 *(self._static(m, dec[name], 1, f"s{k}_l{lane}_{name}{j}_rep", group=(k, lane))
                   for name in ("minmax", "is_max")))
                for j in range(TAKE_COPIES)]

    def _decode(self, m, k, st, has_mul):
        """Per-stage op decoding, shared by every lane.

        The result of a lane is a 4:1 mux by ``cat`` of: the arithmetic unit
        (adder, compares, multiply-add), the bitwise unit (PASS, AND, OR, XOR,
        MAX, MIN, SEL: ``a`` if ``take`` else ``g(a, b)``), the shifter's output
        (SHR, QMUL) and its bit reversal (SHL). Ops that give 0 (NOP, unknown
        codes, MUL ops without a multiplier) select the arithmetic unit with
        its output forced to 0."""
        NR = self.params.pcu_regs
        rescale = self.params.pcu_rescale
        op = st.op
        d = {}

        # Registered: the configuration is static while the unit runs, and a
        # register takes the decoding off the datapath's timing paths.
        def sig(name, cond):
            d[name] = self._static(m, cond, 1, f"s{k}_{name}", group=(k, None))
            return d[name]

        def any_of(*ops):
            return Cat(*(op == o for o in ops)).any()

        mul_ops = (Op.MUL, Op.MAC) if has_mul else ()
        for j in range(NR):
            sig(f"w{j}", (op != Op.NOP) & (st.dst == j))
        sig("sub", ~any_of(Op.ADD, *((Op.RSA,) if rescale else ())))  # a - b unless ADD/RSA
        sig("rsa", (op == Op.RSA) if rescale else Const(0, 1))   # adder: a + (ACC >> b)
        # NOP keeps 0, as without acc_a
        sig("acc_a", (st.acc_a & (op != Op.NOP)) if rescale else Const(0, 1))
        sig("cmp_lt", op == Op.LT)
        sig("cmp_eq", op == Op.EQ)
        sig("arith", any_of(Op.ADD, Op.SUB, *((Op.RSA,) if rescale else ()),
                            *mul_ops))                   # full-width adder output
        sig("mulop", any_of(*mul_ops) if has_mul else Const(0, 1))
        sig("c_early", op == Op.MAC)                    # c reaches the execute cycle
        sig("qmul", op == Op.QMUL)
        sig("shl", op == Op.SHL)
        sig("is_pass", op == Op.PASS)
        sig("is_max", op == Op.MAX)
        sig("minmax", any_of(Op.MAX, Op.MIN))
        sig("is_sel", op == Op.SEL)
        # g(a, b) of the bitwise unit: 0 b, 1 AND, 2 OR, 3 XOR
        sig("g1", any_of(Op.OR, Op.XOR))
        sig("g0", any_of(Op.AND, Op.XOR))
        bitwise = any_of(Op.PASS, Op.AND, Op.OR, Op.XOR, Op.MAX, Op.MIN, Op.SEL)
        shifter = any_of(Op.SHR, *((Op.QMUL,) if has_mul else ()))
        d["cat"] = self._static(m, Mux(bitwise, 1, Mux(shifter, 2, Mux(op == Op.SHL, 3, 0))),
                                2, f"s{k}_cat", group=(k, None))
        ACC = NR + 1
        for x in "ab":
            sig(f"{x}_acc", (getattr(st, x) == ACC) & any_of(*acc_readers(x)))
        sig("acc_b", any_of(Op.MAX, Op.MIN, Op.SEL))    # the short result's b leg
        sig("c_early_acc", any_of(*acc_readers("c")) & (st.c == ACC) if has_mul else Const(0, 1))
        d["shift"] = self._static(m, st.shift, 5, f"s{k}_shift", group=(k, None))
        return d

    def _qmul_shifts(self, has_mul):
        """Whether QMUL's rounding shift is the shared shifter's (a stage with
        a multiplier whose product fits the shifter's W + 1 bits), rather
        than a shift of its own (:meth:`_alu`)."""
        return has_mul and 2 * self.params.mul_width <= self.params.word_width

    def _shifter_inputs(self, dec, a, b, has_mul):
        """The shifter's input word (signed, W + 1 bits) and amount for
        operands `a` and `b`, as far as the static decoding `dec` selects
        them: SHL shifts the bit-reversed a right, QMUL (where the shifter
        is shared with it) shifts by its static amount. What the execute
        cycle still selects (QMUL's rounded product, RSA's ACC) is in
        :meth:`_alu`."""
        W = self.params.word_width
        word = Mux(dec["shl"], Cat(a[::-1], 0), Cat(a, a[W - 1]))
        amount = b[:5]
        if self._qmul_shifts(has_mul):
            amount = Mux(dec["qmul"], dec["shift"], amount)
        return word, amount

    def _alu(self, m, k, lane, dec, a, b, takes, sh, prod, early, qsum, acc, has_mul):
        """One lane of stage k, written with explicit sharing: one adder for
        ADD/SUB/RSA and the compares (LT from its sign, EQ from a zero
        difference), one adder for the multiplier (MUL adds 0, MAC adds c;
        QMUL's rounding constant was added in the round cycle: `qsum`), one
        shifter for SHL, SHR, RSA's rescale of `acc` and QMUL's rounding shift,
        and one bitwise unit for PASS/AND/OR/XOR/MAX/MIN/SEL. `fixed` is the
        part of `take` that needs no compare, a register: 1 for PASS, SEL's
        test c != 0 for SEL (all that SEL reads of c; MAC's addend is
        `early`), else 0. `sh`: the shifter's input word and amount
        (:meth:`_shifter_inputs` of a and b, or registers of their own);
        `qsum` is None where `sh`'s registers hold QMUL's rounded sum
        already (place and route, :meth:`_qmul_shifts`)."""
        p = self.params
        W, mw = p.word_width, p.mul_width
        n = f"s{k}_l{lane}"
        r = Signal(W, name=f"{n}_r")

        # the shifter (SHL as a right shift of the bit-reversed word; RSA shifts ACC)
        share_qmul = self._qmul_shifts(has_mul)
        sh_in = Signal(signed(W + 1), name=f"{n}_sh_in")
        sh_amt = Signal(5, name=f"{n}_sh_amt")
        sh_word, sh_b = sh                      # `_shifter_inputs`, or registers of them
        if p.pcu_rescale:
            sh_word = Mux(dec["rsa"], Cat(acc, acc[W - 1]), sh_word)
        if share_qmul and qsum is not None:
            # QMUL shifts its rounded product (W + 1 bits when 2 * mw <= W),
            # unless `sh` holds it already
            sh_word = _split_mux(dec["qmul_runs"], qsum, sh_word[:W + 1])
        m.d.comb += [sh_in.eq(sh_word), sh_amt.eq(sh_b)]
        if has_mul:
            # the addend: `early`, formed in the round cycle (for a MAC that
            # accumulates, the register is a copy of ACC)
            mw1 = max(2 * mw, W) + 1
            madd = Signal(signed(mw1), name=f"{n}_madd")
            m.d.comb += madd.eq(prod + early)
        shifted = Signal(W, name=f"{n}_shifted")
        m.d.comb += shifted.eq(shift_right(sh_in, sh_amt, m=m, name=f"{n}_shr"))

        # the adder: a + b, a - b, or RSA's a + (ACC >> b)
        addsub = Signal(W + 1, name=f"{n}_addsub")
        subs = dec["sub_runs"]
        bb = Mux(dec["rsa"], shifted, b) if p.pcu_rescale else b
        m.d.comb += addsub.eq(add_inverted(Cat(a, a[W - 1]), Cat(bb, bb[W - 1]),
                                           _spread(subs, W + 1), subs[0], m=m, name=f"{n}_add"))
        lt = addsub[W]                                   # sign of a - b (no overflow in W+1 bits)
        eq = Signal(name=f"{n}_eq")                      # a - b == 0 (mod 2**W), beside the adder
        m.d.comb += eq.eq(a == b)

        # The bitwise unit is g(a, b), or `a` when `take` (PASS, SEL's test,
        # MAX/MIN's compare; 0 for the other ops): that choice is made last,
        # after the result select, on the compare's sign (below).
        # The first half of the copies of `take` select the result, the
        # second the accumulators' short result.
        takes_r = takes[:len(takes) // 2] or takes
        takes_acc = takes[len(takes) // 2:]
        g1, g0 = dec["g1"], dec["g0"]
        bitwise = Signal(W, name=f"{n}_bitwise")
        m.d.comb += bitwise.eq(Mux(g1, Mux(g0, a ^ b, a | b), Mux(g0, a & b, b)))

        arith = addsub[:W]
        if has_mul:
            arith = Mux(dec["mulop"], madd[:W], addsub[:W])
        shr_out = shifted
        if has_mul and not share_qmul:
            shr_out = Mux(dec["qmul"], (qsum >> dec["shift"])[:W], shifted)

        # The arithmetic unit's output, gated by its enable inside the result
        # select (a compare selects it gated off). Then, last: `a` where the
        # bitwise unit takes it, and a compare's result into bit 0.
        cat = dec["cat"]
        rest = select4_gated(cat[0], cat[1], [arith, bitwise, shr_out, shifted[::-1]],
                             dec["arith"].replicate(W), m=m, name=f"{n}_result")
        # `take` is fixed | (minmax & (lt ^ is_max)), so the result is one of
        # two that registers choose before the compare ends (`_by_sign`: one
        # per value of `lt`), chosen by `lt`: on ECP5 `lt` drives the wide mux
        # that joins them (`select_late`), so the compare's sign reaches the
        # result register through no LUT. A compare's result is bit 0's: a
        # compare neither takes `a` nor enables the arithmetic unit (`rest`
        # is 0), so bit 0 is rest, 1 (LT, where lt), `a` or EQ's test.
        cmp_eq, cmp_lt = dec["cmp_eq"], dec["cmp_lt"]
        parts = []
        for j, (triple, (lo, hi)) in enumerate(zip(takes_r, bit_runs(W, len(takes_r)))):
            t = _by_sign(*triple)
            if lo == 0:
                sels = [Cat(cmp_eq | (cmp_lt & x), t[x] | cmp_eq) for x in (0, 1)]
                parts.append(select_late(lt, sels, [rest[0], Const(1, 1), a[0], eq],
                                         m=m, name=f"{n}_res{j}b0"))
                lo = 1
            parts.append(select_late(lt, t, [rest[lo:hi], a[lo:hi]], m=m, name=f"{n}_res{j}"))
        m.d.comb += r.eq(Cat(*parts))

        # The result of the ops that may read ACC (`ACC_OPERAND_OPS`, MAC's c,
        # RSA), which is all the accumulators load: `a` where `take`, `b`
        # for MAX/MIN/SEL otherwise, else the arithmetic unit. An
        # accumulation's loop is then the adder, `take` and one select: the
        # shifter, the bitwise unit, the compares and the result select stay
        # off it.
        # As the result, it is chosen on the compare's sign (`select_late`).
        r_acc = Signal(W, name=f"{n}_racc")
        parts = []
        for j, (triple, (lo, hi)) in enumerate(zip(takes_acc, bit_runs(W, len(takes_acc)))):
            sels = [Cat(dec["acc_b"], t) for t in _by_sign(*triple)]
            parts.append(select_late(lt, sels, [arith[lo:hi], b[lo:hi], a[lo:hi], a[lo:hi]],
                                     m=m, name=f"{n}_racc{j}"))
        m.d.comb += r_acc.eq(Cat(*parts))
        return r, r_acc
