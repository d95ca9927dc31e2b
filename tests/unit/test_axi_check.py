"""AXI4Checker: hand-made violating traffic must raise the right code, legal
traffic (including W before AW and bursts ending exactly on a 4 KiB
boundary) must raise none; attach_checker wires a master to a slave."""

from __future__ import annotations

import random

import pytest
from amaranth import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator

from tessera.hw.axi import BURST_FIXED, BURST_INCR, BURST_WRAP, AXI4Params, AXI4Signature
from tessera.hw.axi_check import AXI4Checker, AXIError, attach_checker
from tessera.hw.dram import DRAM, DRAMModel

from .test_dram import AXIMaster, random_ops

P = AXI4Params(addr_width=32, data_width=128, id_width=4)
DEFAULTS = {
    "ar": {"addr": 0, "len": 0, "size": 4, "burst": BURST_INCR, "id": 0},
    "aw": {"addr": 0, "len": 0, "size": 4, "burst": BURST_INCR, "id": 0},
    "w": {"data": 0, "strb": 0xFFFF, "last": 1},
    "r": {"data": 0, "resp": 0, "last": 1, "id": 0},
    "b": {"resp": 0, "id": 0},
}
LAYOUTS = {"ar": P.addr_layout(), "aw": P.addr_layout(), "w": P.w_layout(),
           "r": P.r_layout(), "b": P.b_layout()}


def x(ch, ready=True, **fields):
    """One beat offered on channel `ch` in a cycle (taken if `ready`)."""
    return (ch, bool(ready), {**DEFAULTS[ch], **fields})


def run_trace(trace, **kwargs):
    """Drive the checker with `trace`, a list of cycles, each a list of `x(...)`
    beats (channels not named are idle). Returns (errors, first_error, flag set)."""
    checker = AXI4Checker(P, **kwargs)
    sim = Simulator(checker)
    sim.add_clock(1e-8)
    out = {}

    async def bench(ctx):
        for cycle in trace:
            for ch in DEFAULTS:
                port = getattr(checker.axi, ch)
                ctx.set(port.valid, 0)
                ctx.set(port.ready, 0)
            for ch, ready, fields in cycle:
                port = getattr(checker.axi, ch)
                ctx.set(port.valid, 1)
                ctx.set(port.ready, ready)
                ctx.set(port.payload, LAYOUTS[ch].const(fields))
            await ctx.tick()
        for ch in DEFAULTS:
            ctx.set(getattr(checker.axi, ch).valid, 0)
        await ctx.tick()
        flags = ctx.get(checker.error_flags)
        out["result"] = (ctx.get(checker.errors), AXIError(ctx.get(checker.first_error)),
                         {c for c in AXIError if flags >> c & 1})

    sim.add_testbench(bench)
    sim.run()
    return out["result"]


def expect(trace, code, count=1, **kwargs):
    errors, first, flags = run_trace(trace, **kwargs)
    assert (first, errors) == (code, count), f"flags {sorted(f.name for f in flags)}"


def test_parameters():
    with pytest.raises(TypeError, match="axi_params"):
        AXI4Checker("p")
    with pytest.raises(ValueError, match="max_outstanding"):
        AXI4Checker(P, max_outstanding=0)
    c = AXI4Checker(P)
    Fragment.get(c, None)
    for path, member, _ in c.signature.flatten(c):
        if path[0] == "axi":
            assert member.flow == wiring.In, path


# -- handshake rules on every channel -----------------------------------------------------

WRITE_BEFORE = {   # what must precede a legal beat on the channel
    "ar": [], "aw": [], "w": [[x("aw", len=0)]], "r": [[x("ar", len=0)]],
    "b": [[x("aw", len=0), x("w", last=1)]],
}


@pytest.mark.parametrize("ch", list(DEFAULTS))
def test_valid_dropped(ch):
    code = AXIError[f"{ch.upper()}_VALID_DROPPED"]
    expect(WRITE_BEFORE[ch] + [[x(ch, ready=False)], []], code)


@pytest.mark.parametrize("ch", list(DEFAULTS))
def test_payload_changed(ch):
    code = AXIError[f"{ch.upper()}_PAYLOAD_CHANGED"]
    field = {"ar": "addr", "aw": "id", "w": "data", "r": "data", "b": "id"}[ch]
    expect(WRITE_BEFORE[ch] + [[x(ch, ready=False, **{field: 1})],
                               [x(ch, ready=True, **{field: 2})]], code)


@pytest.mark.parametrize("ch", list(DEFAULTS))
def test_stall_then_transfer_is_legal(ch):
    errors, _, _ = run_trace(WRITE_BEFORE[ch] + [[x(ch, ready=False)], [x(ch, ready=False)],
                                                 [x(ch)], []])
    assert errors == 0


# -- burst lengths ------------------------------------------------------------------------

def test_w_last_early():
    expect([[x("aw", len=3)], [x("w", last=0)], [x("w", last=0)], [x("w", last=1)]],
           AXIError.W_LAST)


def test_w_last_missing():
    expect([[x("aw", len=1)], [x("w", last=0)], [x("w", last=0)], [x("w", last=1)]],
           AXIError.W_LAST, count=2)       # beat 1 without last, beat 2 past the end


def test_w_before_aw_wrong_count():
    expect([[x("w", last=0)], [x("w", last=1)], [], [x("aw", len=2)]], AXIError.W_LAST)


def test_r_last_early_and_missing():
    expect([[x("ar", len=2)], [], [x("r", last=1)]], AXIError.R_LAST)
    # no last on the final beat, then last one beat too late: both wrong
    expect([[x("ar", len=0)], [], [x("r", last=0)], [x("r", last=1)]], AXIError.R_LAST,
           count=2)


def test_r_without_read():
    expect([[x("r")]], AXIError.R_UNEXPECTED)


def test_b_without_completed_write():
    expect([[x("b")]], AXIError.B_UNEXPECTED)
    expect([[x("aw", len=1)], [x("w", last=0)], [x("b")]], AXIError.B_UNEXPECTED)
    # all W beats but no AW yet: not complete either
    expect([[x("w", last=1)], [x("b")]], AXIError.B_UNEXPECTED)
    # one B per write
    expect([[x("aw"), x("w")], [x("b")], [x("b")]], AXIError.B_UNEXPECTED)


# -- address checks -----------------------------------------------------------------------

@pytest.mark.parametrize("ch", ["ar", "aw"])
def test_4k_crossing(ch):
    code = AXIError[f"{ch.upper()}_4K"]
    expect([[x(ch, addr=0x1FF0, len=1)]] + ([[x("w", last=0)], [x("w")]] if ch == "aw" else []),
           code)
    # unaligned start: beats are counted from the aligned address
    tail = [[x("w", last=0)], [x("w")]] if ch == "aw" else [[x("r", last=0)], [x("r")]]
    expect([[x(ch, addr=0x0FF8, len=1)]] + tail, code)
    assert run_trace([[x(ch, addr=0x0FE8, len=1)]] + tail)[0] == 0


@pytest.mark.parametrize("ch", ["ar", "aw"])
def test_4k_exactly_to_the_boundary_is_legal(ch):
    trace = [[x(ch, addr=0x3F00, len=15)]]
    if ch == "aw":
        trace += [[x("w", last=int(k == 15))] for k in range(16)]
    else:
        trace += [[x("r", last=int(k == 15))] for k in range(16)]
    assert run_trace(trace)[0] == 0
    # narrow beats: 16 x 4 bytes from 0xFC0 end at 0x1000
    assert run_trace([[x("ar", addr=0xFC0, len=15, size=2)]])[0] == 0
    expect([[x("ar", addr=0xFC4, len=15, size=2)]], AXIError.AR_4K)


@pytest.mark.parametrize("fields", [
    {"burst": 3},
    {"burst": BURST_WRAP, "len": 2},
    {"burst": BURST_FIXED, "len": 16},
    {"size": 5},
])
@pytest.mark.parametrize("ch", ["ar", "aw"])
def test_illegal_burst(ch, fields):
    expect([[x(ch, **fields)]], AXIError[f"{ch.upper()}_BURST"])


def test_incr_only():
    trace = [[x("ar", burst=BURST_WRAP, len=3)]]
    assert run_trace(trace)[0] == 0
    expect(trace, AXIError.AR_BURST, incr_only=True)
    expect([[x("aw", burst=BURST_FIXED)]], AXIError.AW_BURST, incr_only=True)


def test_overflow():
    expect([[x("ar")], [x("ar")], [x("ar")]], AXIError.OVERFLOW, max_outstanding=2)


# -- legal traffic and summary outputs ----------------------------------------------------

def test_legal_write_orders():
    trace = [
        [x("aw", len=1, id=1)], [x("w", last=0)], [x("w", last=1)],          # AW first
        [x("w", last=0)], [x("w", last=0), x("aw", len=2, id=2)],            # AW mid-burst
        [x("w", last=1)],
        [x("w", last=0)], [x("w", last=1)], [], [x("aw", len=1, id=3)],      # W first
        [x("aw", len=0, id=4), x("w", last=1)],                              # same cycle
        [x("w", last=1)], [x("w", last=1, data=5)],                          # two early W
        [x("aw", len=0, id=5), x("b", id=1)], [x("aw", len=0, id=6), x("b", id=2)],
        [x("b", id=3)], [x("b", id=4)], [x("b", id=5)], [x("b", id=6)],
    ]
    errors, first, flags = run_trace(trace)
    assert errors == 0, sorted(f.name for f in flags)
    # and one more B is one too many
    expect(trace + [[x("b")]], AXIError.B_UNEXPECTED)


def test_first_error_in_time_then_lowest_code():
    trace = [[x("ar", ready=False, addr=0), x("r")],    # R_UNEXPECTED (18)
             [x("ar", addr=4, ready=False)],            # AR_PAYLOAD_CHANGED (2)
             [x("ar", addr=4)]]
    errors, first, flags = run_trace(trace)
    assert (first, errors) == (AXIError.R_UNEXPECTED, 2)
    assert flags == {AXIError.R_UNEXPECTED, AXIError.AR_PAYLOAD_CHANGED}
    # two in one cycle: the lower code is reported first, both are counted
    errors, first, flags = run_trace([[x("r"), x("b")]])
    assert (first, errors) == (AXIError.B_UNEXPECTED, 2)
    assert flags == {AXIError.B_UNEXPECTED, AXIError.R_UNEXPECTED}


# -- attached to a link ---------------------------------------------------------------------

class _Master(wiring.Component):
    """A master port that the testbench drives directly."""

    def __init__(self):
        super().__init__({"axi": Out(AXI4Signature(P))})

    def elaborate(self, platform):
        return Module()


def test_attach_checker_connects_master_and_slave():
    size = 8192
    master = _Master()
    dram = DRAM(axi_params=P, size_bytes=size, latency=6, max_outstanding=4)
    m = Module()
    m.submodules.master = master
    m.submodules.dram = dram
    check = attach_checker(m, master.axi, dram.axi)
    rng = random.Random(5)
    ops = random_ops(rng, P, size, 60)
    model = DRAMModel(axi_params=P, size_bytes=size)
    bfm = AXIMaster(master.axi, P, model, ops, seed=5)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    bfm.add_to(sim)
    out = {}

    async def finish(ctx):
        while len(bfm.done) < len(ops):
            await ctx.tick()
        await ctx.tick()
        out["errors"] = ctx.get(check.errors)

    sim.add_testbench(finish)
    sim.run()
    bfm.check()
    assert out["errors"] == 0
    with pytest.raises(TypeError, match="AXI4 port"):
        attach_checker(m, check.errors)
