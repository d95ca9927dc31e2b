"""The switch: per output port and network, a configured input select.

A switch has, on each of the three networks, inputs from its four neighbours
(``tracks`` links per side) and from its unit's outputs, and outputs to its
four neighbours and to its unit's inputs. Each output is configured with
``en`` and ``sel`` (which input feeds it). Several outputs may select the
same input: that is multicast, and the input is consumed only once every
selected output has taken the word (an eager fork: each output remembers
that it has already taken the current word, so ``valid`` never depends on
``ready``). Every output is registered by a :class:`~.links.Hop`.
"""

from __future__ import annotations

import contextvars
from types import SimpleNamespace

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .links import NETWORKS, Hop, network_layout
from .params import FabricParams

__all__ = ["select_layout", "mux_tree", "mux2", "select4_gated", "select_late", "shift_right", "add_inverted", "ECP5_MUXES", "Crossbar", "Switch", "SIDES", "switch_ports", "switch_config_layout"]

#: Sides of a switch in the order every port list uses.
SIDES = ("N", "E", "S", "W")


def select_layout(n_inputs: int) -> data.StructLayout:
    """Configuration of one output: enable plus the index of its input."""
    return data.StructLayout({"en": 1, "sel": range(max(n_inputs, 2))})


def switch_ports(params: FabricParams, network: str) -> tuple[list, list]:
    """Names of the inputs and outputs of a switch on `network`.

    A name is ``(side, index)``: side is one of SIDES or ``"U"`` (the unit).
    Inputs from the unit are its outputs and vice versa.
    """
    tracks = {"vec": params.vec_tracks, "scal": params.scal_tracks,
              "ctrl": params.ctrl_tracks}[network]
    unit_out = {"vec": params.unit_vec_out, "scal": params.unit_scal_out,
                "ctrl": params.unit_ctrl_out}[network]
    unit_in = {"vec": params.unit_vec_in, "scal": params.unit_scal_in,
               "ctrl": params.unit_ctrl_in}[network]
    sides = [(side, t) for side in SIDES for t in range(tracks)]
    inputs = sides + [("U", k) for k in range(unit_out)]
    outputs = sides + [("U", k) for k in range(unit_in)]
    return inputs, outputs


def switch_config_layout(params: FabricParams) -> data.StructLayout:
    fields = {}
    for net in NETWORKS:
        inputs, outputs = switch_ports(params, net)
        fields[net] = data.ArrayLayout(select_layout(len(inputs)), len(outputs))
    return data.StructLayout(fields)


#: Set (by :func:`tessera.hw.synth.synthesize`, for ECP5 devices) while a
#: design is elaborated for synthesis: wide selects are then built from ECP5
#: LUT4/PFUMX/L6MUX21 cells (see :func:`mux_tree`). Everywhere else (the
#: simulators, other devices) they are plain Amaranth muxes.
ECP5_MUXES = contextvars.ContextVar("tessera_ecp5_muxes", default=False)


def _lut_init(f) -> int:
    """INIT of an ECP5 LUT4 computing f(A, B, C, D) (index D:C:B:A)."""
    return sum(1 << i for i in range(16) if f(i & 1, (i >> 1) & 1, (i >> 2) & 1, (i >> 3) & 1))


class _Prims:
    """ECP5 mux cells, one Instance per bit, behind `m.submodules`."""

    def __init__(self, m, name):
        self.m, self.name, self.n = m, name, 0

    def _add(self, inst):
        self.m.submodules[f"{self.name}_p{self.n}"] = inst
        self.n += 1

    def lut(self, f, ins):
        """One LUT4 computing ``f(*ins)`` (up to four one-bit inputs, on A,
        B, C, D in order). A constant input is folded into INIT and its pin
        tied to 0."""
        ins = list(ins) + [Const(0, 1)] * (4 - len(ins))
        fixed = [v.value if _is_const(v) else None for v in ins]
        init = _lut_init(lambda *bits: f(*(b if c is None else c
                                            for b, c in zip(bits, fixed))))
        pins = [Const(0, 1) if c is not None else v for v, c in zip(ins, fixed)]
        z = Signal()
        self._add(Instance("LUT4", p_INIT=Const(init, 16), i_A=pins[0], i_B=pins[1],
                           i_C=pins[2], i_D=pins[3], o_Z=z))
        return z

    def pair(self, s0, d0, d1, force=None):
        """``s0 ? d1 : d0`` in one LUT4 (d0, d1 signals or constants). With
        `force` = (t, v, inv), the LUT gives the constant v instead where
        ``t ^ inv`` is 1."""
        if force is None:
            return self.lut(lambda s, a, b, _: b if s else a, [s0, d0, d1])
        t, v, inv = force
        return self.lut(lambda s, a, b, u: v if u ^ inv else (b if s else a), [s0, d0, d1, t])

    def mux2(self, s, d0, d1):
        return self.pair(s, d0, d1)

    def mux2_gated(self, s, d0, g, d1):
        """s ? d1 : (d0 & g), one LUT4."""
        return self.lut(lambda s, a, b, g: b if s else a & g, [s, d0, d1, g])

    def pfumx(self, c0, lo, hi):
        """PFUMX: ``c0 ? hi : lo``, fed by the two LUT4s of its slice."""
        z = Signal()
        self._add(Instance("PFUMX", i_ALUT=hi, i_BLUT=lo, i_C0=c0, o_Z=z))
        return z

    def l6mux(self, sd, lo, hi):
        """L6MUX21: ``sd ? hi : lo``, fed by the PFUMXs of two slices."""
        z = Signal()
        self._add(Instance("L6MUX21", i_D0=lo, i_D1=hi, i_SD=sd, o_Z=z))
        return z

    def mux4(self, s0, s1, d, force=None):
        lo, hi = self.pair(s0, d[0], d[1], force), self.pair(s0, d[2], d[3], force)
        return self.pfumx(s1, lo, hi)

    def mux8(self, s, d):
        lo, hi = self.mux4(s[0], s[1], d[0:4]), self.mux4(s[0], s[1], d[4:8])
        return self.l6mux(s[2], lo, hi)


def _is_const(v) -> bool:
    return isinstance(v, Const)


def mux_tree(sel, options, *, m=None, name="mux"):
    """``options[sel]`` as a binary tree of 2:1 muxes on the bits of `sel`
    (codes past the end give 0). Yosys/ABC map that to fewer ECP5 LUTs than
    the ``$pmux`` that a ``Switch`` on `sel` becomes.

    When synthesizing for ECP5 (:data:`ECP5_MUXES`) and given the module `m`,
    every group of 8 (or 4) options that are all signals is built per bit from
    LUT4s, PFUMXs and an L6MUX21: 4 LUT4s per bit for 8:1 and 2 for 4:1, where
    ABC9 maps the same logic to about 6 and 3 (it cannot use the slice's wide
    muxes for a function of more than five inputs). Constant options are
    folded into the LUTs (:func:`_select_bit`), so a select with constant
    options is as shallow as one without; the levels above a group stay
    ordinary muxes."""
    sel = Value.cast(sel)
    opts = [Value.cast(v) for v in options]
    width = max(len(v) for v in opts)
    n = 1 << len(sel)
    opts = (opts + [Const(0, width)] * n)[:n]
    bit = 0
    if m is not None and ECP5_MUXES.get() and len(sel) >= 2:
        group = 3 if len(sel) >= 3 else 2
        prims = _Prims(m, name)
        grouped = []
        for g in range(0, n, 1 << group):
            chunk = opts[g:g + (1 << group)]
            grouped.append(Cat(*(_select_bit(prims, sel[:group], [_bit(v, i) for v in chunk])
                                 for i in range(width))))
        opts, bit = grouped, group
    for b in range(bit, len(sel)):
        opts = [Mux(sel[b], opts[i + 1], opts[i]) for i in range(0, len(opts), 2)]
    return opts[0]


def _bit(v, i):
    """Bit i of `v` (zero-extended), a one-bit Const where `v` is constant."""
    if _is_const(v):
        return Const((v.value >> i) & 1 if i < len(v) else 0, 1)
    return v[i] if i < len(v) else Const(0, 1)


def _select_bit(prims, sel, d):
    """``d[sel]`` for one bit of 4 or 8 options (`sel` 2 or 3 bits wide), the
    options signals or constants, from ECP5 cells: an 8:1 is 4 LUT4s, 2
    PFUMXs and an L6MUX21, a 4:1 2 LUT4s and a PFUMX, the constants folded
    into the LUTs' INIT. Where one half of an 8:1 is a single constant, the
    other half's LUTs give it themselves (their spare input is sel[2]): 2
    LUT4s and a PFUMX. Where every option is constant, the bit is a function
    of `sel` alone, left to Yosys (ordinary logic)."""
    if all(_is_const(x) for x in d):
        for b in range(len(sel)):
            d = [Mux(sel[b], d[i + 1], d[i]) for i in range(0, len(d), 2)]
        return d[0]
    if len(d) == 4:
        return prims.mux4(sel[0], sel[1], d)
    for half, other, inv in ((d[4:], d[:4], 0), (d[:4], d[4:], 1)):
        if all(_is_const(x) for x in half) and len({x.value for x in half}) == 1:
            return prims.mux4(sel[0], sel[1], other, force=(sel[2], half[0].value, inv))
    return prims.mux8(sel, d)


def mux2(s, d0, d1, *, m=None, name="mux2"):
    """``s ? d1 : d0`` (`d0` and `d1` as wide as each other). On ECP5
    (:data:`ECP5_MUXES`, given the module `m`) it is one LUT4 per bit, which
    Yosys and ABC keep as it is: the data inputs reach the output through
    one LUT, where ABC may otherwise build the select on top of another
    one that computes part of it (e.g. a register's input select reusing the
    select of a register that loads the same value)."""
    d0, d1 = Value.cast(d0), Value.cast(d1)
    if m is None or not ECP5_MUXES.get() or _is_const(d0) or _is_const(d1):
        return Mux(s, d1, d0)
    prims = _Prims(m, name)
    return Cat(*(prims.mux2(s, d0[i], d1[i]) for i in range(max(len(d0), len(d1)))))


def select4_gated(s0, s1, options, gate, *, m=None, name="sel4"):
    """``[options[0] & gate, options[1], options[2], options[3]][s1:s0]``, where
    `gate` has one bit per bit of the result (an operand unit's result
    enable folded into the select). On ECP5 (:data:`ECP5_MUXES`) each bit is
    two LUT4s and a PFUMX, the gate taking the spare input of one LUT4."""
    opts = [Value.cast(v) for v in options]
    gate = Value.cast(gate)
    width = max(len(v) for v in opts)
    if m is None or not ECP5_MUXES.get() or any(_is_const(v) for v in opts):
        lo = Mux(s0, opts[1], opts[0] & gate)
        return Mux(s1, Mux(s0, opts[3], opts[2]), lo)
    prims = _Prims(m, name)
    bits = []
    for i in range(width):
        d = [v[i] if i < len(v) else Const(0, 1) for v in opts]
        lo = prims.mux2_gated(s0, d[0], gate[i], d[1])
        bits.append(prims.pfumx(s1, lo, prims.mux2(s0, d[2], d[3])))
    return Cat(*bits)


def select_late(late, sels, options, *, m=None, name="late"):
    """``options[sels[1]] if late else options[sels[0]]``: one of 2 or 4
    options (words, or constants) by one of two selects (1 or 2 bits),
    chosen by `late`, a bit that arrives last (a carry chain's sign). On
    ECP5 (:data:`ECP5_MUXES`, given the module `m`) each bit of 2 options
    is two LUT4s (one 2:1 per select) into a PFUMX whose select is `late`;
    of 4 options, two 4:1 muxes (two LUT4s and a PFUMX each) into an
    L6MUX21 whose select is `late`. Either way `late` passes one wide mux
    and no LUT, where the plain form computes the select from it first and
    then selects."""
    opts = [Value.cast(v) for v in options]
    s0, s1 = (Value.cast(x) for x in sels)
    bits_sel = {2: 1, 4: 2}.get(len(opts))
    if bits_sel is None or len(s0) != bits_sel or len(s1) != bits_sel:
        raise ValueError(f"select_late takes 2 options with 1-bit selects or 4 options with 2-bit "
                         f"selects (got {len(opts)} options, selects of {len(s0)} and {len(s1)} bits)")
    width = max(len(v) for v in opts)

    def pick(sel, d):
        if len(d) == 2:
            return Mux(sel[0], d[1], d[0])
        return Mux(sel[1], Mux(sel[0], d[3], d[2]), Mux(sel[0], d[1], d[0]))

    if m is None or not ECP5_MUXES.get():
        return Mux(late, pick(s1, opts), pick(s0, opts))
    prims = _Prims(m, name)
    bits = []
    for i in range(width):
        d = [_bit(v, i) for v in opts]
        if len(d) == 2:
            bits.append(prims.pfumx(late, prims.pair(s0[0], *d), prims.pair(s1[0], *d)))
        else:
            bits.append(prims.l6mux(late, prims.mux4(s0[0], s0[1], d),
                                    prims.mux4(s1[0], s1[1], d)))
    return Cat(*bits)


def shift_right(x, amt, *, m=None, name="shr"):
    """``x >> amt`` for a signed `x` (arithmetic), as wide as `x`.

    When synthesizing for ECP5 (:data:`ECP5_MUXES`) and given the module `m`,
    the barrel shifter is built from the slice's wide muxes: an 8:1 mux
    (4 LUT4s, 2 PFUMXs, an L6MUX21) per bit for each 3 bits of `amt` and a
    4:1 for the rest, so a 5-bit shift is two LUT levels where ABC9, which
    cannot use the wide muxes, maps it to four or five."""
    x, amt = Value.cast(x), Value.cast(amt)
    n = len(x)
    if m is None or not ECP5_MUXES.get():
        return (x.as_signed() >> amt)[:n]
    prims = _Prims(m, name)
    sign = x[n - 1]
    bits = [x[i] for i in range(n)]
    k = 0
    while k < len(amt):
        g = min(3, len(amt) - k)
        sel, step = amt[k:k + g], 1 << k
        new = []
        for i in range(n):
            d = [bits[i + j * step] if i + j * step < n else sign for j in range(1 << g)]
            if all(v is sign for v in d):
                new.append(sign)
            elif g == 3:
                new.append(prims.mux8(sel, d))
            elif g == 2:
                new.append(prims.mux4(sel[0], sel[1], d))
            else:
                new.append(prims.mux2(sel[0], d[0], d[1]))
        bits, k = new, k + g
    return Cat(*bits)


#: INIT of a CCU2C half that adds a and b, b inverted where C is 1, with D
#: tied to 1: the LUT4 (the carry's propagate) is A ^ B ^ C, and the LUT2
#: (INIT[3:0], the carry where the propagate is 0) is A. Yosys' own $alu
#: map (share/lattice/arith_map_ccu2c.v) uses the same INIT for its BI.
CCU2C_ADD_INV = 0x96AA


def add_inverted(a, b, inv, cin, *, m=None, name="add"):
    """``a + (b ^ inv) + cin`` modulo 2**len(a): a per-bit inversion `inv`
    of `b` (as wide as `a` and `b`) and a carry-in `cin` (1 bit), so that
    ``inv = sub.replicate(n), cin = sub`` gives a + b or a - b.

    When synthesizing for ECP5 (:data:`ECP5_MUXES`) and given the module
    `m`, it is a chain of CCU2C cells (two bits each) whose LUTs invert b
    themselves: from Amaranth's XOR and add, Yosys puts a LUT4 per bit in
    front of the carry chain instead (a logic level and a routing hop on
    the PCU's compare loop)."""
    a, b, inv, cin = Value.cast(a), Value.cast(b), Value.cast(inv), Value.cast(cin)
    n = len(a)
    if not (len(b) == len(inv) == n and len(cin) == 1):
        raise ValueError(f"add_inverted: a, b, inv must have one width and cin 1 bit "
                         f"(got {len(a)}, {len(b)}, {len(inv)}, {len(cin)})")
    if m is None or not ECP5_MUXES.get():
        return (a + (b ^ inv) + cin)[:n]
    zero, one = Const(0, 1), Const(1, 1)
    bits, carry = [], cin
    for i in range(0, n, 2):
        half = [(a[j], b[j], inv[j]) if j < n else (zero, zero, zero) for j in (i, i + 1)]
        s, cout = Signal(2, name=f"{name}_s{i // 2}"), Signal(name=f"{name}_co{i // 2}")
        m.submodules[f"{name}_c{i // 2}"] = Instance(
            "CCU2C", p_INIT0=Const(CCU2C_ADD_INV, 16), p_INIT1=Const(CCU2C_ADD_INV, 16),
            p_INJECT1_0="NO", p_INJECT1_1="NO", i_CIN=carry,
            i_A0=half[0][0], i_B0=half[0][1], i_C0=half[0][2], i_D0=one,
            i_A1=half[1][0], i_B1=half[1][1], i_C1=half[1][2], i_D1=one,
            o_S0=s[0], o_S1=s[1], o_COUT=cout)
        bits += [s[0], s[1]]
        carry = cout
    return Cat(*bits[:n])


class Crossbar(wiring.Component):
    """One network of a switch: ``n_in`` inputs, ``n_out`` registered outputs,
    each output selecting one input (or none), with multicast."""

    def __init__(self, layout, n_inputs: int, n_outputs: int, *, registered=None):
        if n_inputs < 1 or n_outputs < 1:
            raise ValueError(f"Crossbar needs at least one input and one output, "
                             f"got {n_inputs} inputs and {n_outputs} outputs")
        if registered is None:
            registered = [True] * n_outputs
        if len(registered) != n_outputs:
            raise ValueError(f"Crossbar registered= needs {n_outputs} entries, got {len(registered)}")
        self._layout = layout
        self._n_in = n_inputs
        self._n_out = n_outputs
        self._registered = [bool(r) for r in registered]
        super().__init__({
            "i": In(stream.Signature(layout)).array(n_inputs),
            "o": Out(stream.Signature(layout)).array(n_outputs),
            "config": In(data.ArrayLayout(select_layout(n_inputs), n_outputs)),
        })

    def elaborate(self, platform):
        m = Module()
        hops = []
        for k in range(self._n_out):
            if self._registered[k]:
                hop = Hop(self._layout)
                m.submodules[f"hop{k}"] = hop
                wiring.connect(m, hop.o, wiring.flipped(self.o[k]))
            else:
                # Drive the output port directly; `.i` is the port itself.
                hop = SimpleNamespace(i=self.o[k])
            hops.append(hop)

        # taken[k]: output k already passed on the word now at its input's head.
        taken = Signal(self._n_out)
        src_valid = Signal(self._n_out)
        for k, hop in enumerate(hops):
            cfg = self.config[k]
            m.d.comb += [
                src_valid[k].eq(mux_tree(cfg.sel, [self.i[j].valid for j in range(self._n_in)])),
                hop.i.payload.eq(mux_tree(cfg.sel, [self.i[j].payload.as_value()
                                                    for j in range(self._n_in)],
                                          m=m, name=f"sel{k}")),
                hop.i.valid.eq(cfg.en & src_valid[k] & ~taken[k]),
            ]

        # Input j is consumed when every output selecting it has taken or is
        # taking the word. An input that no output selects is never consumed.
        consumed = Signal(self._n_in)
        for j in range(self._n_in):
            selected = [self.config[k].en & (self.config[k].sel == j) for k in range(self._n_out)]
            all_done = Const(1)
            for k in range(self._n_out):
                all_done = all_done & (~selected[k] | taken[k] | hops[k].i.ready)
            m.d.comb += [
                self.i[j].ready.eq(Cat(*selected).any() & all_done),
                consumed[j].eq(self.i[j].valid & self.i[j].ready),
            ]

        for k, hop in enumerate(hops):
            cfg = self.config[k]
            src_consumed = Signal(name=f"src_consumed{k}")
            m.d.comb += src_consumed.eq(consumed.bit_select(cfg.sel, 1))
            with m.If(src_consumed | ~cfg.en):
                m.d.sync += taken[k].eq(0)
            with m.Elif(hop.i.valid & hop.i.ready):
                m.d.sync += taken[k].eq(1)
        return m


class Switch(wiring.Component):
    """A tile's switch: one :class:`Crossbar` per network.

    Ports are arrays in the order of :func:`switch_ports`: ``i_vec[j]`` is the
    j-th vector input, ``o_vec[k]`` the k-th vector output, and so on.
    """

    def __init__(self, params: FabricParams):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params
        members = {"config": In(switch_config_layout(params))}
        for net in NETWORKS:
            inputs, outputs = switch_ports(params, net)
            sig = stream.Signature(network_layout(params, net))
            members[f"i_{net}"] = In(sig).array(len(inputs))
            members[f"o_{net}"] = Out(sig).array(len(outputs))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for net in NETWORKS:
            inputs, outputs = switch_ports(self.params, net)
            xbar = Crossbar(network_layout(self.params, net), len(inputs), len(outputs),
                            registered=[side != "U" for side, _ in outputs])
            m.submodules[net] = xbar
            m.d.comb += xbar.config.eq(getattr(self.config, net))
            for j in range(len(inputs)):
                wiring.connect(m, wiring.flipped(getattr(self, f"i_{net}")[j]), xbar.i[j])
            for k in range(len(outputs)):
                wiring.connect(m, xbar.o[k], wiring.flipped(getattr(self, f"o_{net}")[k]))
        return m
