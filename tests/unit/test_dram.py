"""Simulation DRAM: byte-exact against DRAMModel under random bursts with
random stalls on every channel (AXI4Checker attached), exact read latency,
bandwidth with several bursts outstanding, the bandwidth cap, error responses,
traffic counters, the backdoor, and one run on Verilator through the stream
harness."""

from __future__ import annotations

import hashlib
import inspect
import random
from collections import deque
from dataclasses import dataclass, field

import pytest
from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from tessera.hw.axi import (BURST_FIXED, BURST_INCR, BURST_WRAP, RESP_DECERR, RESP_OKAY,
                            RESP_SLVERR, AXI4Params)
from tessera.hw.axi_check import AXIError, attach_checker
from tessera.hw.dram import DRAM, DRAMModel

from .streams import run_testbenches

P128 = AXI4Params(addr_width=32, data_width=128, id_width=4)


# -- an AXI4 master for pysim: five benches, program order, hazards respected -----------

@dataclass
class Op:
    kind: str                       # "r" or "w"
    addr: int
    len: int                        # AxLEN (beats - 1)
    id: int = 0
    size: int | None = None         # AxSIZE; None = full width
    burst: int = BURST_INCR
    beats: list = field(default_factory=list)     # writes: [(data, strb), ...]
    expect: object = None           # reads: [(data, resp)]; writes: resp
    got: list = field(default_factory=list)
    cycles: list = field(default_factory=list)    # reads: cycle of each R beat
    issued_at: int | None = None    # cycle of the AR/AW handshake


def byte_span(op, p):
    beat = p.bytes_per_beat
    base = op.addr // beat * beat
    return base, base + (op.len + 1) * beat


class AXIMaster:
    """Drives an AXI4 slave port from pysim testbenches (one per channel).

    Operations issue in program order per direction; an operation waits until
    every earlier one that overlaps it (and of which one is a write) has
    completed, so each read's expected data is the model's state when it
    issues. W data is offered as soon as the AW is decided, often before the
    AW handshake. `gap` is the chance of an idle cycle before a transfer,
    `stall` the chance of ready low on R and B."""

    def __init__(self, port, params, model, ops, *, seed=0, gap=0.3, stall=0.3,
                 timeout=200_000):
        self.port, self.p, self.model = port, params, model
        self.ops = list(ops)
        self.gap, self.stall, self.timeout = gap, stall, timeout
        self.rng = {ch: random.Random(f"{seed}-{ch}") for ch in ("ar", "r", "aw", "w", "b")}
        self.reads = [op for op in self.ops if op.kind == "r"]
        self.writes = [op for op in self.ops if op.kind == "w"]
        self.deps = {}
        spans = [byte_span(op, params) for op in self.ops]
        for i, op in enumerate(self.ops):
            lo, hi = spans[i]
            self.deps[id(op)] = [self.ops[j] for j in range(i) if
                                 (op.kind == "w" or self.ops[j].kind == "w")
                                 and spans[j][0] < hi and lo < spans[j][1]]
        self.done = set()
        self.r_expect = deque()
        self.b_expect = deque()
        self.w_queue = deque()
        self.cycle = 0
        self.failures = []

    def add_to(self, sim):
        sim.add_testbench(self._clock, background=True)
        for bench in (self._ar, self._r, self._aw, self._w, self._b):
            sim.add_testbench(bench)

    async def _clock(self, ctx):
        while True:
            await ctx.tick()
            self.cycle += 1
            if self.cycle > self.timeout:
                raise AssertionError(f"AXI master timed out: {len(self.done)} of "
                                     f"{len(self.ops)} operations done")

    def _fail(self, message):
        # recorded, not raised: the other benches run to the end, and the test
        # asserts on `failures` after the simulation (a clean report)
        self.failures.append(message)

    def check(self):
        assert not self.failures, (f"{len(self.failures)} mismatches; first: "
                                   f"{self.failures[0]}")

    def _ready(self, op):
        return all(id(d) in self.done for d in self.deps[id(op)])

    def _addr_payload(self, op):
        return self.p.addr_layout().const({
            "addr": op.addr, "len": op.len, "id": op.id, "burst": op.burst,
            "size": self.p.size if op.size is None else op.size})

    async def _issue(self, ctx, port, ops, rng, prepare):
        for op in ops:
            while not self._ready(op):
                await ctx.tick()
            while rng.random() < self.gap:
                await ctx.tick()
            prepare(op)
            ctx.set(port.payload, self._addr_payload(op))
            ctx.set(port.valid, 1)
            await ctx.tick().until(port.ready)
            op.issued_at = self.cycle - 1
            ctx.set(port.valid, 0)

    async def _ar(self, ctx):
        def prepare(op):
            op.expect = self.model.read(op.addr, op.len, size=op.size, burst=op.burst)
            self.r_expect.append(op)
        await self._issue(ctx, self.port.ar, self.reads, self.rng["ar"], prepare)

    async def _aw(self, ctx):
        def prepare(op):
            op.expect = self.model.write(op.addr, op.len, op.beats, size=op.size,
                                         burst=op.burst)
            self.b_expect.append(op)
            self.w_queue.append(op)
        await self._issue(ctx, self.port.aw, self.writes, self.rng["aw"], prepare)

    async def _w(self, ctx):
        port, rng = self.port.w, self.rng["w"]
        for _ in self.writes:
            while not self.w_queue:
                await ctx.tick()
            op = self.w_queue.popleft()
            for k, (value, strb) in enumerate(op.beats):
                while rng.random() < self.gap:
                    await ctx.tick()
                ctx.set(port.payload, self.p.w_layout().const(
                    {"data": value, "strb": strb, "last": k == op.len}))
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)

    async def _r(self, ctx):
        port, rng = self.port.r, self.rng["r"]
        left = len(self.reads)
        while left:
            ready = rng.random() >= self.stall
            ctx.set(port.ready, ready)
            if ready and ctx.get(port.valid):
                beat = ctx.get(port.payload)
                if not self.r_expect:
                    self._fail(f"R beat with no read outstanding (cycle {self.cycle})")
                    await ctx.tick()
                    continue
                op = self.r_expect[0]
                k = len(op.got)
                op.got.append((int(beat.data), int(beat.resp)))
                op.cycles.append(self.cycle)
                if beat.id != op.id:
                    self._fail(f"R id {beat.id} for a read of id {op.id}")
                if beat.last != (k == op.len):
                    self._fail(f"R last={beat.last} on beat {k} of a {op.len + 1}-beat burst")
                if k == op.len:
                    if op.got != op.expect:
                        self._fail(_diff(op))
                    self.r_expect.popleft()
                    self.done.add(id(op))
                    left -= 1
            await ctx.tick()
        ctx.set(port.ready, 0)

    async def _b(self, ctx):
        port, rng = self.port.b, self.rng["b"]
        left = len(self.writes)
        while left:
            ready = rng.random() >= self.stall
            ctx.set(port.ready, ready)
            if ready and ctx.get(port.valid):
                b = ctx.get(port.payload)
                if not self.b_expect:
                    self._fail(f"B with no write outstanding (cycle {self.cycle})")
                    await ctx.tick()
                    continue
                op = self.b_expect.popleft()
                if (int(b.id), int(b.resp)) != (op.id, op.expect):
                    self._fail(f"B (id, resp) = {(int(b.id), int(b.resp))}, "
                               f"expected {(op.id, op.expect)}")
                self.done.add(id(op))
                left -= 1
            await ctx.tick()
        ctx.set(port.ready, 0)


def _diff(op):
    bad = [k for k, (g, e) in enumerate(zip(op.got, op.expect)) if g != e]
    k = bad[0] if bad else 0
    return (f"read addr={op.addr:#x} len={op.len}: {len(bad)} beats differ; first beat {k}: "
            f"got {op.got[k][0]:#x} resp {op.got[k][1]}, "
            f"expected {op.expect[k][0]:#x} resp {op.expect[k][1]}")


def random_ops(rng, p, size_bytes, n, *, errors=True, max_len=16):
    """Bursts that stay inside a 4 KiB page; some unaligned, some strobed, and
    (with `errors`) some out of range (DECERR) or of an unsupported type or
    size (SLVERR), all legal AXI4."""
    beat = p.bytes_per_beat
    per_page = 4096 // beat
    pages = max(1, size_bytes // 4096)
    ops = []
    for _ in range(n):
        kind = rng.choice("rw")
        length = rng.choice([0, 1, 3, 7, 15, rng.randrange(max_len), rng.randrange(max_len)])
        length = min(length, per_page - 1, size_bytes // beat - 1)
        room = min(per_page, size_bytes // beat) - length
        page = rng.randrange(pages)
        addr = page * 4096 + rng.randrange(room) * beat
        if rng.random() < 0.15:
            addr += rng.randrange(beat)
        op = Op(kind, addr, length, id=rng.randrange(1 << p.id_width))
        roll = rng.random() if errors else 1.0
        if roll < 0.05:
            op.addr = size_bytes + rng.randrange(8) * 4096 + (addr % 4096)  # DECERR
        elif roll < 0.08:
            op.addr = page * 4096
            op.len = rng.choice([1, 3, 7, 15])
            op.burst = BURST_WRAP                                              # SLVERR
        elif roll < 0.10:
            op.size = p.size - 1                                               # SLVERR
        if kind == "w":
            for k in range(op.len + 1):
                strb = (1 << beat) - 1 if rng.random() < 0.7 else rng.getrandbits(beat)
                op.beats.append((rng.getrandbits(p.data_width), strb))
        ops.append(op)
    return ops


def make_bench(dram, *, checker=True):
    m = Module()
    m.submodules.dram = dram
    check = attach_checker(m, dram.axi) if checker else None
    return m, check


def run_ops(dram, ops, *, seed=0, gap=0.3, stall=0.3, preload=None, backdoor=True,
            after=None, checker=True):
    """Run `ops` on `dram` against a DRAMModel holding `preload` (written through
    the backdoor unless `backdoor` is false); returns (model, master, finals)."""
    p = dram.axi_params
    init = preload or bytes(dram.size_bytes)
    model = DRAMModel(axi_params=p, size_bytes=dram.size_bytes, init=init)
    top, check = make_bench(dram, checker=checker)
    master = AXIMaster(dram.axi, p, model, ops, seed=seed, gap=gap, stall=stall)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    finals = {}
    beat = p.bytes_per_beat

    async def backdoor_preload(ctx):
        if preload and backdoor:
            for i in range(dram.words):
                word = int.from_bytes(preload[i * beat:(i + 1) * beat], "little")
                if word:
                    ctx.set(dram.memory.data[i], word)

    sim.add_testbench(backdoor_preload)     # runs before the first clock edge
    master.add_to(sim)

    async def finish(ctx):
        while len(master.done) < len(ops):
            await ctx.tick()
        await ctx.tick().repeat(4)
        finals["memory"] = [ctx.get(dram.memory.data[i]) for i in range(dram.words)]
        for name in ("read_bytes", "write_bytes", "read_bursts", "write_bursts"):
            finals[name] = ctx.get(getattr(dram, name))
        if check is not None:
            finals["errors"] = ctx.get(check.errors)
            finals["first_error"] = AXIError(ctx.get(check.first_error))
        if after is not None:
            await after(ctx, finals)

    sim.add_testbench(finish)
    sim.run()
    master.check()
    return model, master, finals


# -- parameters --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(axi_params="x"), TypeError, "axi_params"),
    (dict(size_bytes=3000), ValueError, "size_bytes must be a power of two"),
    (dict(size_bytes=8), ValueError, "size_bytes must be >= 16"),
    (dict(size_bytes=1 << 33), ValueError, "size_bytes=.* exceeds the 32-bit"),
    (dict(size_bytes=4096.0), TypeError, "size_bytes must be an int"),
    (dict(latency=2), ValueError, "latency must be >= 3"),
    (dict(bytes_per_cycle=0), ValueError, "bytes_per_cycle must be >= 1"),
    (dict(bytes_per_cycle=32), ValueError, "bytes_per_cycle=32 exceeds the 128-bit"),
    (dict(max_outstanding=0), ValueError, "max_outstanding must be >= 1"),
    (dict(init=[0] * 257), ValueError, "init has 257 words"),
])
def test_parameter_validation(kwargs, exc, match):
    args = dict(axi_params=P128, size_bytes=4096)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        DRAM(**args)


def test_signature_and_backdoor_name():
    dram = DRAM(axi_params=P128, size_bytes=4096)
    assert dram.signature.members["axi"].flow == In
    assert dram.memory.depth == 256 and dram.memory.shape.width == 128
    from amaranth.back import verilog
    text = verilog.convert(dram, name="dram_top")
    assert "reg [127:0] storage [255:0];" in text


# -- byte-exact random traffic ------------------------------------------------------------

@pytest.mark.parametrize("seed, gap, stall, bpc, outstanding", [
    (1, 0.3, 0.3, 16, 8),
    (2, 0.0, 0.6, 16, 2),
    (3, 0.5, 0.1, 8, 4),
    (4, 0.1, 0.1, 5, 1),
])
def test_random_bursts_byte_exact(seed, gap, stall, bpc, outstanding):
    size = 16 * 1024
    rng = random.Random(seed)
    dram = DRAM(axi_params=P128, size_bytes=size, latency=rng.choice([3, 7, 20]),
                bytes_per_cycle=bpc, max_outstanding=outstanding)
    ops = random_ops(rng, P128, size, 300)
    preload = rng.randbytes(size)
    model, master, finals = run_ops(dram, ops, seed=seed, gap=gap, stall=stall,
                                    preload=preload)
    assert finals["errors"] == 0, f"AXI checker: {finals['first_error'].name}"
    assert finals["memory"] == model.words()          # backdoor read-back, every word
    reads = [op for op in ops if op.kind == "r"]
    writes = [op for op in ops if op.kind == "w"]
    assert finals["read_bursts"] == len(reads)
    assert finals["write_bursts"] == len(writes)
    assert finals["read_bytes"] == 16 * sum(op.len + 1 for op in reads)
    assert finals["write_bytes"] == sum(bin(s).count("1") for op in writes for _, s in op.beats)
    resps = {r for op in reads for _, r in op.got} | {op.expect for op in writes}
    assert {RESP_OKAY, RESP_DECERR, RESP_SLVERR} <= resps


@pytest.mark.parametrize("data_width", [32, 64])
def test_narrow_bus(data_width):
    p = AXI4Params(addr_width=20, data_width=data_width, id_width=2)
    rng = random.Random(data_width)
    size = 8192
    dram = DRAM(axi_params=p, size_bytes=size, latency=5, bytes_per_cycle=p.bytes_per_beat // 2)
    ops = random_ops(rng, p, size, 40)
    model, _, finals = run_ops(dram, ops, seed=data_width, preload=rng.randbytes(size))
    assert finals["errors"] == 0
    assert finals["memory"] == model.words()


# -- error responses -----------------------------------------------------------------------

def test_error_responses():
    # below 4 KiB, so that a legal burst can start inside and run off the end
    size = 2048
    dram = DRAM(axi_params=P128, size_bytes=size, latency=4)
    rng = random.Random(7)
    preload = rng.randbytes(size)

    def w(addr, length, **kw):
        return Op("w", addr, length, beats=[(rng.getrandbits(128), 0xFFFF)] * (length + 1), **kw)
    ops = [
        Op("r", size, 0, id=1),                             # first byte beyond: DECERR
        Op("r", size - 32, 3, id=2),                        # runs off the end: DECERR
        Op("r", 0x40, 3, id=3, burst=BURST_WRAP),           # SLVERR
        Op("r", 0x80, 0, id=4, burst=BURST_FIXED),          # SLVERR
        Op("r", 0x100, 1, id=5, size=2),                    # narrow: SLVERR
        Op("r", 0x10000000, 0, id=6),                       # high address bits: DECERR
        w(size, 1, id=7),
        w(size - 16, 1, id=8),                              # last beat off the end: DECERR
        w(0x200, 1, id=9, burst=BURST_WRAP),
        w(0x300, 0, id=10, size=3),
        Op("r", size - 16, 0, id=11),                       # last word: OKAY
    ]
    model, _, finals = run_ops(dram, ops, preload=preload, gap=0.2, stall=0.2)
    got = {op.id: (op.got if op.kind == "r" else op.expect) for op in ops}
    assert [r for _, r in got[1]] == [RESP_DECERR]
    assert [r for _, r in got[2]] == [RESP_DECERR] * 4
    assert [r for _, r in got[3]] == [RESP_SLVERR] * 4
    assert [r for _, r in got[4]] == [RESP_SLVERR]
    assert [r for _, r in got[5]] == [RESP_SLVERR] * 2
    assert [r for _, r in got[6]] == [RESP_DECERR]
    assert all(d == 0 for op in ops if op.kind == "r" and op.id != 11 for d, _ in op.got)
    assert [got[i] for i in (7, 8, 9, 10)] == [RESP_DECERR, RESP_DECERR, RESP_SLVERR,
                                                 RESP_SLVERR]
    assert got[11] == [(int.from_bytes(preload[-16:], "little"), RESP_OKAY)]
    assert finals["memory"] == model.words()            # nothing written
    assert model.mem == bytearray(preload)
    assert finals["errors"] == 0


# -- timing: latency and bandwidth ------------------------------------------------------

async def _stream_reads(ctx, dram, bursts, length, *, r_ready=lambda c: True):
    """AR always valid with back-to-back bursts; returns (AR cycles, R beat cycles)."""
    ar_cycles, r_cycles = [], []
    total = bursts * (length + 1)
    issued = 0
    cycle = 0
    while len(r_cycles) < total:
        if issued < bursts:
            ctx.set(dram.axi.ar.valid, 1)
            ctx.set(dram.axi.ar.payload, P128.addr_layout().const(
                {"addr": issued * (length + 1) * 16 % dram.size_bytes, "len": length,
                 "size": 4, "burst": BURST_INCR}))
        else:
            ctx.set(dram.axi.ar.valid, 0)
        ready = r_ready(cycle)
        ctx.set(dram.axi.r.ready, ready)
        if issued < bursts and ctx.get(dram.axi.ar.ready):
            ar_cycles.append(cycle)
            issued += 1
        if ready and ctx.get(dram.axi.r.valid):
            assert ctx.get(dram.axi.r.payload.resp) == RESP_OKAY
            r_cycles.append(cycle)
        await ctx.tick()
        cycle += 1
        assert cycle < 100_000
    return ar_cycles, r_cycles


def _run_bench(dram, bench):
    top, check = make_bench(dram)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    out = {}

    async def wrapper(ctx):
        out["result"] = await bench(ctx)
        out["errors"] = ctx.get(check.errors)

    sim.add_testbench(wrapper)
    sim.run()
    assert out["errors"] == 0
    return out["result"]


@pytest.mark.parametrize("latency", [3, 10, 64])
def test_read_latency_exact(latency):
    dram = DRAM(axi_params=P128, size_bytes=4096, latency=latency)

    async def bench(ctx):
        ar, r = await _stream_reads(ctx, dram, 1, 3)
        return r[0] - ar[0], r
    first, beats = _run_bench(dram, bench)
    assert first == latency
    assert beats == list(range(beats[0], beats[0] + 4))       # then one beat per cycle


def test_latency_under_load():
    """Every burst's first beat comes no earlier than `latency` after its AR."""
    dram = DRAM(axi_params=P128, size_bytes=4096, latency=12, max_outstanding=4)

    async def bench(ctx):
        return await _stream_reads(ctx, dram, 12, 3, r_ready=lambda c: c % 3 != 1)
    ar, r = _run_bench(dram, bench)
    firsts = r[::4]
    assert all(f - a >= 12 for a, f in zip(ar, firsts))
    assert firsts[0] - ar[0] == 12


def _bandwidth(cycles, beat=16):
    return len(cycles) * beat / (cycles[-1] - cycles[0] + 1)


def test_read_bandwidth_full():
    """64 back-to-back 16-beat bursts, 8 outstanding, latency 64: latency is
    hidden, the stream runs at the full 16 B/cycle."""
    dram = DRAM(axi_params=P128, size_bytes=1 << 16, latency=64, bytes_per_cycle=16,
                max_outstanding=8)

    async def bench(ctx):
        return await _stream_reads(ctx, dram, 64, 15)
    ar, r = _run_bench(dram, bench)
    bw = _bandwidth(r)
    overall = len(r) * 16 / (r[-1] - ar[0] + 1)
    print(f"read bandwidth {bw:.3f} B/cycle steady, {overall:.3f} including first latency")
    assert bw >= 0.95 * 16
    assert r[0] - ar[0] == 64


def test_read_bandwidth_too_few_outstanding():
    """With 2 outstanding 16-beat bursts the latency of 64 is not hidden: the
    model is a real memory, not a free one."""
    dram = DRAM(axi_params=P128, size_bytes=1 << 16, latency=64, max_outstanding=2)

    async def bench(ctx):
        return await _stream_reads(ctx, dram, 8, 15)
    _, r = _run_bench(dram, bench)
    assert _bandwidth(r) < 0.5 * 16


@pytest.mark.parametrize("bpc", [8, 4, 12])
def test_read_bandwidth_capped(bpc):
    dram = DRAM(axi_params=P128, size_bytes=1 << 16, latency=20, bytes_per_cycle=bpc,
                max_outstanding=8)

    async def bench(ctx):
        return await _stream_reads(ctx, dram, 24, 15)
    _, r = _run_bench(dram, bench)
    bw = _bandwidth(r)
    print(f"bytes_per_cycle={bpc}: measured {bw:.3f} B/cycle")
    assert abs(bw - bpc) <= 0.05 * bpc


async def _stream_writes(ctx, dram, bursts, length):
    """AW and W always valid; returns the W beat cycles."""
    w_cycles = []
    aw_sent = 0
    cycle = 0
    total = bursts * (length + 1)
    ctx.set(dram.axi.b.ready, 1)
    while len(w_cycles) < total:
        ctx.set(dram.axi.aw.valid, aw_sent < bursts)
        ctx.set(dram.axi.aw.payload, P128.addr_layout().const(
            {"addr": aw_sent * (length + 1) * 16 % dram.size_bytes, "len": length, "size": 4,
             "burst": BURST_INCR}))
        k = len(w_cycles)
        ctx.set(dram.axi.w.valid, 1)
        ctx.set(dram.axi.w.payload, P128.w_layout().const(
            {"data": k, "strb": 0xFFFF, "last": k % (length + 1) == length}))
        if aw_sent < bursts and ctx.get(dram.axi.aw.ready):
            aw_sent += 1
        if ctx.get(dram.axi.w.ready):
            w_cycles.append(cycle)
        await ctx.tick()
        cycle += 1
    ctx.set(dram.axi.w.valid, 0)
    await ctx.tick().repeat(4)
    return w_cycles


@pytest.mark.parametrize("bpc", [16, 8])
def test_write_bandwidth(bpc):
    dram = DRAM(axi_params=P128, size_bytes=1 << 16, latency=64, bytes_per_cycle=bpc)

    async def bench(ctx):
        w = await _stream_writes(ctx, dram, 16, 15)
        return w, ctx.get(dram.write_bytes), ctx.get(dram.memory.data[5])
    w, written, word5 = _run_bench(dram, bench)
    bw = _bandwidth(w)
    print(f"write bandwidth at bytes_per_cycle={bpc}: {bw:.3f} B/cycle")
    assert abs(bw - bpc) <= 0.05 * bpc
    assert written == 16 * 16 * 16 and word5 == 5


def test_bandwidth_shared_by_reads_and_writes():
    """Concurrent read and write streams split the one 16 B/cycle budget."""
    dram = DRAM(axi_params=P128, size_bytes=1 << 16, latency=16, bytes_per_cycle=16)
    result = {}

    async def reads(ctx):
        _, r = await _stream_reads(ctx, dram, 16, 15)
        result["r"] = r

    async def writes(ctx):
        # writes go to the upper half, reads stream from the lower half
        w_cycles = []
        sent = 0
        cycle = 0
        ctx.set(dram.axi.b.ready, 1)
        while len(w_cycles) < 256:
            ctx.set(dram.axi.aw.valid, sent < 16)
            ctx.set(dram.axi.aw.payload, P128.addr_layout().const(
                {"addr": 0x8000 + sent * 256, "len": 15, "size": 4, "burst": BURST_INCR}))
            k = len(w_cycles)
            ctx.set(dram.axi.w.valid, 1)
            ctx.set(dram.axi.w.payload, P128.w_layout().const(
                {"data": k, "strb": 0xFFFF, "last": k % 16 == 15}))
            if sent < 16 and ctx.get(dram.axi.aw.ready):
                sent += 1
            if ctx.get(dram.axi.w.ready):
                w_cycles.append(cycle)
            await ctx.tick()
            cycle += 1
        ctx.set(dram.axi.w.valid, 0)
        result["w"] = w_cycles

    top, check = make_bench(dram)
    run_testbenches(top, reads, writes)
    r, w = result["r"], result["w"]
    # while both streams run, every cycle moves exactly one beat
    start = max(r[0], w[0])
    end = min(r[-1], w[-1])
    beats = sum(start <= c <= end for c in r + w)
    # the budget is one beat per cycle, and it is used (an R beat leaves a cycle
    # after its slot, so R and W may share a cycle at the edges of a window)
    assert 0.95 <= beats / (end - start + 1) <= 1 + 2 / (end - start + 1)
    assert 0.4 <= sum(start <= c <= end for c in r) / beats <= 0.6


# -- backdoor and counters -----------------------------------------------------------------

def test_backdoor_preload_and_readback():
    dram = DRAM(axi_params=P128, size_bytes=4096, latency=5)
    ops = [Op("r", 0x30, 1), Op("w", 0x100, 0, beats=[(0x1234_5678, 0x000F)])]
    preload = bytes(0x30) + (0xAA).to_bytes(1, "little") * 32 + bytes(4096 - 0x50)
    model, _, finals = run_ops(dram, ops, preload=preload)
    assert ops[0].got == [(int.from_bytes(b"\xaa" * 16, "little"), RESP_OKAY)] * 2
    assert finals["memory"][0x10] == 0x1234_5678
    assert finals["write_bytes"] == 4 and finals["read_bytes"] == 32


def test_init_words():
    dram = DRAM(axi_params=P128, size_bytes=4096, latency=3, init=[11, 22, 33])
    ops = [Op("r", 0, 3)]
    image = b"".join(v.to_bytes(16, "little") for v in [11, 22, 33]) + bytes(4096 - 48)
    run_ops(dram, ops, preload=image, backdoor=False)
    assert [d for d, _ in ops[0].got] == [11, 22, 33, 0]


# -- Verilator, through the stream harness --------------------------------------------------

class DRAMStreams(wiring.Component):
    """Test-only wrapper: the DRAM's five channels as top-level stream ports
    (what the stream harness addresses), with an AXI4Checker on the link.

    * AR is held back until `reads_after` B responses have been given, so a
      stimulus can write and then read back what it wrote.
    * `report` offers one word once `report_after` R beats and B responses
      have passed: the checker's error count (bits 0-15) and first error code
      (bits 16-20), so that the harness brings the checker's verdict back.
    """

    def __init__(self, *, size_bytes=4096, latency=10, bytes_per_cycle=16, init=None):
        self.dram = DRAM(axi_params=P128, size_bytes=size_bytes, latency=latency,
                         bytes_per_cycle=bytes_per_cycle, init=init)
        super().__init__({
            "ar": In(stream.Signature(P128.addr_layout())),
            "r": Out(stream.Signature(P128.r_layout())),
            "aw": In(stream.Signature(P128.addr_layout())),
            "w": In(stream.Signature(P128.w_layout())),
            "b": Out(stream.Signature(P128.b_layout())),
            "report": Out(stream.Signature(32)),
            "reads_after": In(16),
            "report_after": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dram = dram = self.dram
        check = attach_checker(m, dram.axi, name="check")
        bus = dram.axi
        answered = Signal(16)
        moved = Signal(16)
        gate = answered >= self.reads_after
        m.d.comb += [
            bus.ar.valid.eq(self.ar.valid & gate), bus.ar.payload.eq(self.ar.payload),
            self.ar.ready.eq(bus.ar.ready & gate),
        ]
        wiring.connect(m, wiring.flipped(self.aw), bus.aw)
        wiring.connect(m, wiring.flipped(self.w), bus.w)
        wiring.connect(m, bus.r, wiring.flipped(self.r))
        wiring.connect(m, bus.b, wiring.flipped(self.b))
        b_take = bus.b.valid & bus.b.ready
        r_take = bus.r.valid & bus.r.ready
        m.d.sync += [answered.eq(answered + b_take), moved.eq(moved + b_take + r_take)]
        reported = Signal()
        with m.If(self.report.valid & self.report.ready):
            m.d.sync += reported.eq(1)
        m.d.comb += [
            self.report.valid.eq((moved >= self.report_after) & ~reported),
            self.report.payload.eq(check.errors[:16] | (check.first_error << 16)),
        ]
        return m


def _verilator_stimulus(rng, size):
    """Writes of random bursts (random strobes), then reads of every written
    burst plus reads of preloaded (init) words and one DECERR read."""
    beat = 16
    model = DRAMModel(axi_params=P128, size_bytes=size)
    init = [rng.getrandbits(128) for _ in range(32)]
    for i, word in enumerate(init):
        model.mem[i * beat:(i + 1) * beat] = word.to_bytes(beat, "little")
    aw, w, ar, expect_r, expect_b = [], [], [], [], []
    addr_layout, w_layout = P128.addr_layout(), P128.w_layout()
    for k in range(12):
        length = rng.choice([0, 3, 7, 15])
        addr = 0x400 + k * 0x100
        beats = [(rng.getrandbits(128), rng.choice([0xFFFF, rng.getrandbits(16)]))
                 for _ in range(length + 1)]
        expect_b.append(model.write(addr, length, beats))
        aw.append(addr_layout.const({"addr": addr, "len": length, "size": 4,
                                     "burst": BURST_INCR, "id": k % 16}).as_bits())
        w += [w_layout.const({"data": d, "strb": s, "last": i == length}).as_bits()
              for i, (d, s) in enumerate(beats)]
        ar.append((addr, length, k % 16))
    ar.insert(3, (0, 15, 1))                 # preloaded words
    ar.append((size, 0, 2))                  # DECERR
    r_layout = P128.r_layout()
    ar_bits = []
    for addr, length, ident in ar:
        ar_bits.append(addr_layout.const({"addr": addr, "len": length, "size": 4,
                                          "burst": BURST_INCR, "id": ident}).as_bits())
        for i, (d, resp) in enumerate(model.read(addr, length)):
            expect_r.append(r_layout.const({"data": d, "resp": resp, "last": i == length,
                                            "id": ident}).as_bits())
    b_layout = P128.b_layout()
    b_bits = [b_layout.const({"resp": resp, "id": k % 16}).as_bits()
              for k, resp in enumerate(expect_b)]
    return init, {"aw": aw, "w": w, "ar": ar_bits}, expect_r, b_bits


@pytest.mark.parametrize("sim", ["pysim", "verilator"])
def test_dram_through_stream_harness(need_sim, sim):
    need_sim(sim)
    from tessera.sim.harness import run_streams
    size = 4096
    init, inputs, expect_r, expect_b = _verilator_stimulus(random.Random(11), size)
    source = inspect.getsource(DRAMStreams) + repr(init)
    key = "dram-streams-" + hashlib.sha256(source.encode()).hexdigest()[:12]
    res = run_streams(lambda: DRAMStreams(size_bytes=size, latency=10, bytes_per_cycle=16,
                                          init=init),
                      sim=sim, key=key, inputs=inputs,
                      static={"reads_after": len(expect_b),
                              "report_after": len(expect_r) + len(expect_b)},
                      expect={"r": len(expect_r), "b": len(expect_b), "report": 1},
                      in_gap=0.3, out_stall=0.3, seed=4, timeout=20_000)
    assert not res.timed_out
    assert res.outputs["b"] == expect_b
    assert res.outputs["r"] == expect_r
    assert res.outputs["report"] == [0], f"checker: {res.outputs['report'][0]:#x}"


# -- longer sweeps (not in CI) ----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 22))
def test_random_bursts_sweep(seed):
    rng = random.Random(seed)
    size = rng.choice([2048, 16 * 1024])
    dram = DRAM(axi_params=P128, size_bytes=size, latency=rng.randrange(3, 80),
                bytes_per_cycle=rng.randrange(1, 17), max_outstanding=rng.randrange(1, 10))
    ops = random_ops(rng, P128, size, 600)
    model, _, finals = run_ops(dram, ops, seed=seed, gap=rng.random() * 0.6,
                               stall=rng.random() * 0.6, preload=rng.randbytes(size))
    assert finals["errors"] == 0, f"AXI checker: {finals['first_error'].name}"
    assert finals["memory"] == model.words()


@pytest.mark.slow
@pytest.mark.parametrize("bpc", range(1, 17))
def test_read_bandwidth_sweep(bpc):
    dram = DRAM(axi_params=P128, size_bytes=1 << 16, latency=64, bytes_per_cycle=bpc)

    async def bench(ctx):
        return await _stream_reads(ctx, dram, 64, 15)
    _, r = _run_bench(dram, bench)
    assert abs(_bandwidth(r) - bpc) <= 0.02 * bpc
