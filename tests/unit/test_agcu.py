"""AGCU: read and write streams against the Python model (sim/agcu_model.py),
byte-exact, through the RTL DRAM (hw/dram.py) with random ready/valid stalls
on every AXI channel (a throttle stage per channel) and on both vector
streams, the AXI4 protocol checker (hw/axi_check.py) on the AGCU's port, the
bursts compared with the model's coalescing, every element width (int32,
int16, int8, uint8) at random element alignments, int8/int16/int32 tiles
checked against NumPy slicing (sign-extended reads, truncating writes), and
the streaming bandwidth measured from the AGCU's counters."""

from __future__ import annotations

import gc
import random
import warnings

import numpy as np
import pytest
from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tessera.hw.agcu import (AGCU, ELEM_BYTES, ELEM_INT8, ELEM_INT16, ELEM_INT32, ELEM_UINT8,
                             MAX_BURST, PAGE_BYTES, pattern_layout)
from tessera.hw.axi_check import AXIError, attach_checker
from tessera.hw.dram import DRAM
from tessera.hw.links import vector_layout
from tessera.hw.params import FabricParams, preset
from tessera.sim.agcu_model import AGCUModel, Pattern, agcu_config, vector_addresses

from .streams import run_testbenches

SMALL = preset("small")        # 4 lanes: a vector is one 16-byte beat
DEFAULT = preset("default")    # 8 lanes: a vector is two beats


# -- test top: AGCU -> throttles -> DRAM, checker on the AGCU's port -----------------------

class Throttle(wiring.Component):
    """A two-entry stage that refuses input and withholds output at random
    (an LFSR against ``stall``/16), keeping ``valid`` up once offered."""

    def __init__(self, layout, seed):
        self._layout = layout
        self._seed = seed
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout)),
                          "stall": In(4)})

    def elaborate(self, platform):
        m = Module()
        lfsr = Signal(16, init=self._seed)
        m.d.sync += lfsr.eq(Mux(lfsr[0], (lfsr >> 1) ^ 0xB400, lfsr >> 1))
        en_in = lfsr[0:4] >= self.stall
        en_out = lfsr[8:12] >= self.stall
        slots = [Signal(self._layout, name=f"s{k}") for k in range(2)]
        count = Signal(range(3))
        shown = Signal()
        push = self.i.valid & self.i.ready
        pop = self.o.valid & self.o.ready
        m.d.comb += [
            self.i.ready.eq((count != 2) & en_in),
            self.o.valid.eq((count != 0) & (shown | en_out)),
            self.o.payload.eq(slots[0]),
        ]
        m.d.sync += shown.eq(self.o.valid & ~self.o.ready)
        with m.If(push & ~pop):
            with m.If(count == 0):
                m.d.sync += slots[0].eq(self.i.payload)
            with m.Else():
                m.d.sync += slots[1].eq(self.i.payload)
        with m.Elif(pop & ~push):
            m.d.sync += slots[0].eq(slots[1])
        with m.Elif(pop & push):
            with m.If(count == 1):
                m.d.sync += slots[0].eq(self.i.payload)
            with m.Else():
                m.d.sync += [slots[0].eq(slots[1]), slots[1].eq(self.i.payload)]
        m.d.sync += count.eq(count + push - pop)
        return m


class Top(Elaboratable):
    def __init__(self, params, *, dram_bytes=8192, latency=16, throttle=True, loopback=False,
                 dram_outstanding=8, **agcu_kwargs):
        self.params = params
        self.agcu = AGCU(params, **agcu_kwargs)
        self.dram = DRAM(axi_params=self.agcu.axi_params, size_bytes=dram_bytes,
                         latency=latency, bytes_per_cycle=params.dram_bytes_per_cycle,
                         max_outstanding=dram_outstanding)
        self.throttle = throttle
        self.loopback = loopback
        self.stall = Signal(4)
        self.cycle = Signal(32)

    def elaborate(self, platform):
        m = Module()
        m.submodules.agcu = agcu = self.agcu
        m.submodules.dram = dram = self.dram
        m.d.sync += self.cycle.eq(self.cycle + 1)
        self.checker = attach_checker(m, agcu.axi, incr_only=True, max_outstanding=32)
        if self.throttle:
            for k, ch in enumerate(("ar", "r", "aw", "w", "b")):
                src, dst = getattr(agcu.axi, ch), getattr(dram.axi, ch)
                if ch in ("r", "b"):
                    src, dst = dst, src
                layout = src.signature.members["payload"].shape
                t = m.submodules[f"thr_{ch}"] = Throttle(layout, seed=0x1234 + 977 * k)
                m.d.comb += t.stall.eq(self.stall)
                wiring.connect(m, src, t.i)
                wiring.connect(m, t.o, dst)
        else:
            wiring.connect(m, agcu.axi, dram.axi)
        if self.loopback:
            wiring.connect(m, agcu.o_vec, agcu.i_vec)
        return m


# -- testbench helpers ---------------------------------------------------------------------

def _vec_const(params, words, last=0):
    return vector_layout(params).const({"data": [int(w) for w in words], "last": last})


def _vec_words(bits, lanes):
    return np.array([(bits >> (32 * i)) & 0xFFFF_FFFF for i in range(lanes)], dtype=np.uint32)


async def preload(ctx, top, image: bytes):
    beat = top.agcu.axi_params.bytes_per_beat
    for i in range(len(image) // beat):
        ctx.set(top.dram.memory.data[i], int.from_bytes(image[i * beat:(i + 1) * beat], "little"))


async def readback(ctx, top, size):
    beat = top.agcu.axi_params.bytes_per_beat
    return b"".join(ctx.get(top.dram.memory.data[i]).to_bytes(beat, "little")
                    for i in range(size // beat))


async def run_case(ctx, top, rng, *, read=None, write=None, wvecs=(), stall=0, vstall=0.0,
                   timeout=20_000, ofires=None):
    """Configure, start, feed `wvecs` to i_vec and collect o_vec with random
    gaps (`vstall`) until done. Returns (read vectors [(words, last)], AR list,
    AW list, cycles from start to done); appends the cycle of each o_vec
    transfer to `ofires` if given."""
    agcu, p = top.agcu, top.params
    ctx.set(top.stall, stall)
    ctx.set(agcu.config, AGCU.config_layout(p).const(agcu_config(read, write)))
    consts = [_vec_const(p, v) for v in wvecs]
    ctx.set(agcu.start, 1)
    await ctx.tick()
    ctx.set(agcu.start, 0)
    got, ars, aws = [], [], []
    wi = 0
    offered = False
    held = None
    axi = agcu.axi
    for cycle in range(timeout):
        if not top.loopback:
            if not offered and wi < len(consts) and rng.random() >= vstall:
                ctx.set(agcu.i_vec.payload, consts[wi])
                offered = True
            ctx.set(agcu.i_vec.valid, offered)
            ready = rng.random() >= vstall
            ctx.set(agcu.o_vec.ready, ready)
            valid = ctx.get(agcu.o_vec.valid)
            if valid:
                bits = ctx.get(agcu.o_vec.payload).as_bits()
                if held is not None:
                    assert bits == held, "o_vec payload changed before its transfer"
                if ready:
                    got.append((_vec_words(bits, p.lanes), bits >> (32 * p.lanes) & 1))
                    held = None
                else:
                    held = bits
            else:
                assert held is None, "o_vec valid withdrawn before its transfer"
            if offered and ctx.get(agcu.i_vec.ready):
                wi += 1
                offered = False
        if ofires is not None and ctx.get(agcu.o_vec.valid) and ctx.get(agcu.o_vec.ready):
            ofires.append(cycle)
        if ctx.get(axi.ar.valid) and ctx.get(axi.ar.ready):
            pl = ctx.get(axi.ar.payload)
            ars.append((pl.addr, pl.len + 1))
        if ctx.get(axi.aw.valid) and ctx.get(axi.aw.ready):
            pl = ctx.get(axi.aw.payload)
            aws.append((pl.addr, pl.len + 1))
        done = ctx.get(agcu.done)
        await ctx.tick()
        if done:
            if not top.loopback:
                ctx.set(agcu.i_vec.valid, 0)
                ctx.set(agcu.o_vec.ready, 0)
            return got, ars, aws, cycle
    raise AssertionError(f"timeout: {len(got)} read vectors, {wi} of {len(consts)} written")


# -- random patterns -----------------------------------------------------------------------

def random_pattern(rng, lanes, mem_bytes, *, read, elem=ELEM_INT32):
    """A random affine pattern of `elem` elements that stays inside
    [0, mem_bytes), with base and strides at random element alignments."""
    es = ELEM_BYTES[elem]
    vb = lanes * es
    counts = [rng.choice([1, 1, 2, 3, 4, 5, 8]), rng.choice([1, 1, 2, 3, 4]),
              rng.choice([1, 1, 1, 2, 3])]
    kind = rng.random()
    if kind < 0.45:
        s0 = vb                                           # contiguous
    elif kind < 0.6:
        s0 = vb + es * rng.randrange(1, 32 // es)         # small gaps
    elif kind < 0.7:
        s0 = es * rng.randrange(1, lanes) if lanes > 1 else 0   # overlapping vectors
    elif kind < 0.75:
        s0 = 0
    else:
        s0 = es * rng.randrange(-256 // es, 384 // es)
    if rng.random() < 0.5:
        s1 = counts[0] * s0 if s0 > 0 else vb * counts[0]   # contiguous rows
    else:
        s1 = es * rng.randrange(-512 // es, 1536 // es)
    s2 = es * rng.randrange(-2048 // es, 4096 // es)
    strides = [s0, s1, s2]
    offs = [0]
    for c, s in zip(counts, strides):
        offs = [o + i * s for o in offs for i in (0, c - 1)]
    lo, hi = min(offs), max(offs) + vb
    if hi - lo > mem_bytes:
        return random_pattern(rng, lanes, mem_bytes, read=read, elem=elem)
    base = -lo + es * rng.randrange(0, (mem_bytes - (hi - lo)) // es + 1)
    if rng.random() < 0.3:
        # put the 4 KiB page boundary inside the pattern's span where it fits
        first = PAGE_BYTES - es * rng.randrange(1, max(2, (hi - lo) // es))
        if first >= 0 and first + (hi - lo) <= mem_bytes:
            base = first - lo
    return Pattern(base=base, counts=tuple(counts), strides=tuple(strides),
                   last_on=rng.randrange(4) if read else 0, elem=elem)


def _overlap(a, b, lanes):
    ra = [x for x, _ in vector_addresses(a)]
    rb = [x for x, _ in vector_addresses(b)]
    va, vb = lanes * a.elem_bytes, lanes * b.elem_bytes
    return min(ra) < max(rb) + vb and min(rb) < max(ra) + va


def check_against_model(params, model, image_before, image_after, case, got, ars, aws):
    read, write, wvecs = case
    if read is not None:
        expect = model.read(read, image_before)
        assert len(got) == len(expect), (read, len(got), len(expect))
        for k, ((w, last), (ew, elast)) in enumerate(zip(got, expect)):
            np.testing.assert_array_equal(w, ew, err_msg=f"read vector {k} of {read}")
            assert last == elast, f"read vector {k}: last={last}, expected {elast} ({read})"
        assert ars == model.bursts(read), (read, ars, model.bursts(read))
    else:
        assert got == [] and ars == []
    expect_mem = bytearray(image_before)
    if write is not None:
        model.write(write, expect_mem, wvecs)
        assert aws == model.bursts(write), (write, aws, model.bursts(write))
    else:
        assert aws == []
    if image_after != bytes(expect_mem):
        diff = [i for i in range(len(expect_mem)) if image_after[i] != expect_mem[i]]
        raise AssertionError(f"memory differs at {len(diff)} bytes, first {diff[:8]} "
                             f"(write pattern {write})")


ALL_ELEMS = (ELEM_INT32, ELEM_INT16, ELEM_INT8, ELEM_UINT8)


def run_random(params, seed, ncases, *, latency=16, mem_bytes=8192, stalls=(0, 4, 8, 12),
               elems=ALL_ELEMS, **agcu_kwargs):
    """`ncases` random read/write pattern pairs, each stream with an element
    width drawn from `elems`, against the model."""
    rng = random.Random(seed)
    lanes = params.lanes
    model = AGCUModel(lanes=params.lanes, beat_bytes=params.dram_bytes_per_cycle)
    top = Top(params, dram_bytes=mem_bytes, latency=latency, **agcu_kwargs)
    cases = []
    for i in range(ncases):
        r = rng.random()
        read = (random_pattern(rng, lanes, mem_bytes, read=True, elem=rng.choice(elems))
                if r < 0.75 else None)
        write = (random_pattern(rng, lanes, mem_bytes, read=False, elem=rng.choice(elems))
                 if r > 0.35 else None)
        for _ in range(20):
            # the two streams run concurrently: what a read sees of a region being
            # written is a race, so the compiler never overlaps them in one run
            if read is None or write is None or not _overlap(read, write, lanes):
                break
            write = random_pattern(rng, lanes, mem_bytes, read=False, elem=write.elem)
        else:
            write = None
        if rng.random() < 0.04 and read is not None:
            read = Pattern(base=read.base, counts=(0, 2), strides=(lanes * read.elem_bytes, 0),
                           elem=read.elem)    # empty stream
        nw = write.vectors if write is not None else 0
        wvecs = [np.array([rng.getrandbits(32) for _ in range(params.lanes)], dtype=np.uint32)
                 for _ in range(nw)]
        cases.append((read, write, wvecs))
    passed = []

    async def bench(ctx):
        for k, (read, write, wvecs) in enumerate(cases):
            image = rng.randbytes(mem_bytes)
            await preload(ctx, top, image)
            stall, vstall = rng.choice(stalls), rng.choice([0.0, 0.2, 0.5])
            try:
                got, ars, aws, _ = await run_case(ctx, top, rng, read=read, write=write,
                                                  wvecs=wvecs, stall=stall, vstall=vstall)
                after = await readback(ctx, top, mem_bytes)
                check_against_model(params, model, image, after, (read, write, wvecs),
                                    got, ars, aws)
            except AssertionError as e:
                raise AssertionError(f"case {k} (seed {seed}, read {read}, write {write}, "
                                     f"stall {stall}, vstall {vstall}): {e}") from None
            assert ctx.get(top.checker.errors) == 0, \
                f"case {k}: AXI violation {AXIError(ctx.get(top.checker.first_error)).name}"
            passed.append(k)

    run_testbenches(top, bench)
    assert len(passed) == ncases
    return ncases


# -- tests ---------------------------------------------------------------------------------

def test_config_layout_compact_and_ports():
    for name in ("tiny", "small", "default", "plasticine"):
        p = preset(name)
        layout = AGCU.config_layout(p)
        assert layout.size <= 16 * 32
        dut = AGCU(p)
        dut._MustUse__silence = True          # inspected, not elaborated
        assert dut.axi_params.data_width == p.dram_bytes_per_cycle * 8
        assert dut.axi_params.id_width == 4 and dut.axi_params.addr_width == 32
        for port in ("start", "busy", "done", "perf_active", "perf_starved", "perf_stalled"):
            assert len(getattr(dut, port)) == 1
        assert len(dut.read_bytes) == 32 and len(dut.write_bytes) == 32
    # the config round-trips through the layout
    cfg = agcu_config(Pattern(base=0x1234, counts=(3, 2, 1), strides=(16, -64, 0), last_on=2),
                      Pattern(base=0x40, counts=(5,), strides=(20,)))
    c = AGCU.config_layout(SMALL).const(cfg)
    assert c.rd.base == 0x1234 and c.rd.stride[1] == -64 and c.rd.last_on == 2
    assert c.wr.count[0] == 5 and c.wr.count[1] == 1 and c.wr.en == 1
    assert c.rd.elem == ELEM_INT32 and c.wr.elem == ELEM_INT32
    cfg = agcu_config(Pattern(base=0x1235, counts=(3,), strides=(7,), elem=ELEM_UINT8),
                      Pattern(base=0x42, counts=(5,), strides=(-6,), elem=ELEM_INT16))
    c = AGCU.config_layout(SMALL).const(cfg)
    assert c.rd.elem == ELEM_UINT8 and c.rd.base == 0x1235 and c.rd.stride[0] == 7
    assert c.wr.elem == ELEM_INT16 and c.wr.stride[0] == -6
    # elem adds two bits per pattern; the whole configuration is still 12 words
    assert pattern_layout(read=True).size == 181 and pattern_layout(read=False).size == 179
    assert AGCU.config_layout(DEFAULT).size <= 12 * 32


def test_low_address_bits_ignored():
    """Address bits below the element size are ignored (the model rejects
    such patterns; the RTL reads and writes the element-aligned ones)."""
    p = SMALL
    model = AGCUModel(lanes=p.lanes)
    top = Top(p, latency=10)
    cases = [(ELEM_INT32, 3, 2), (ELEM_INT16, 1, 1), (ELEM_INT32, 2, 1)]

    async def bench(ctx):
        rng = random.Random(4)
        for elem, rlow, wlow in cases:
            es = ELEM_BYTES[elem]
            read = Pattern(base=96, counts=(3, 2), strides=(4 * es, 40), elem=elem)
            write = Pattern(base=4096 + 20, counts=(4,), strides=(3 * es,), elem=elem)
            cfg = agcu_config(read, write)
            cfg["rd"]["base"] += rlow
            cfg["wr"]["base"] += wlow
            image = rng.randbytes(8192)
            await preload(ctx, top, image)
            wvecs = [np.array([rng.getrandbits(32) for _ in range(p.lanes)], dtype=np.uint32)
                     for _ in range(4)]
            consts = [_vec_const(p, v) for v in wvecs]
            ctx.set(top.agcu.config, AGCU.config_layout(p).const(cfg))
            ctx.set(top.agcu.start, 1)
            await ctx.tick()
            ctx.set(top.agcu.start, 0)
            ctx.set(top.agcu.o_vec.ready, 1)
            got = []
            for _ in range(2000):
                ctx.set(top.agcu.i_vec.valid, bool(consts))
                if consts:
                    ctx.set(top.agcu.i_vec.payload, consts[0])
                if ctx.get(top.agcu.o_vec.valid):
                    got.append(_vec_words(ctx.get(top.agcu.o_vec.payload).as_bits(), p.lanes))
                if consts and ctx.get(top.agcu.i_vec.ready):
                    consts.pop(0)
                done = ctx.get(top.agcu.done)
                await ctx.tick()
                if done:
                    break
            ctx.set(top.agcu.i_vec.valid, 0)
            assert done
            expect = [w for w, _ in model.read(read, image)]
            np.testing.assert_array_equal(np.array(got), np.array(expect))
            after = await readback(ctx, top, 8192)
            assert after == bytes(model.write(write, bytearray(image), wvecs))

    run_testbenches(top, bench)


def _rejects(exc, match, make):
    """`make()` raises `exc`; the half-built AGCU is collected here with its
    UnusedElaboratable warning silenced, not reported in a later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc, match=match) as info:
            make()
        del info
        gc.collect()


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"read_bursts": 0}, ValueError, "read_bursts must be in 1..256"),
    ({"read_buffer_beats": 24}, ValueError, "read_buffer_beats must be in 32..4096"),
    ({"write_bursts": 1.5}, TypeError, "write_bursts must be an int"),
])
def test_parameter_validation(kwargs, exc, match):
    _rejects(exc, match, lambda: AGCU(SMALL, **kwargs))


def test_params_validation():
    _rejects(TypeError, "AGCU params must be a FabricParams", lambda: AGCU("small"))
    _rejects(ValueError, "spans more than 16 beats",
             lambda: AGCU(FabricParams(lanes=32, pmu_banks=32, dram_bytes_per_cycle=4)))


def test_model_bursts_rules():
    """The coalescing rule on hand-checked patterns."""
    m = AGCUModel(lanes=4, beat_bytes=16)
    # contiguous aligned: 40 vectors -> 16 + 16 + 8 beats
    assert m.bursts(Pattern(base=0, counts=(40,), strides=(16,))) == \
        [(0, 16), (256, 16), (512, 8)]
    # contiguous, 4 bytes off the beat: 41 beats, each fetched once
    assert m.bursts(Pattern(base=4, counts=(40,), strides=(16,))) == \
        [(0, 16), (256, 16), (512, 9)]
    # across a 4 KiB page: split at 4096
    assert m.bursts(Pattern(base=4096 - 40, counts=(4,), strides=(16,))) == \
        [(4096 - 48, 3), (4096, 2)]
    # strided with gaps: one burst per vector
    assert m.bursts(Pattern(base=0, counts=(3,), strides=(64,))) == [(0, 1), (64, 1), (128, 1)]
    # stride 0: a one-beat vector is fetched once and kept; a two-beat one
    # starts before the kept beat, so it is fetched again each time
    assert m.bursts(Pattern(base=0, counts=(40,), strides=(0,))) == [(0, 1)]
    assert m.bursts(Pattern(base=8, counts=(40,), strides=(0,))) == [(0, 2)] * 40
    bs = m.bursts(Pattern(base=0, counts=(3, 2), strides=(16, 48)))      # rows back to back
    assert bs == [(0, 6)]


def test_model_bursts_narrow_elements():
    """Narrow elements: several vectors per beat still coalesce into
    16-beat bursts; odd byte offsets; a vector straddling beats."""
    m4 = AGCUModel(lanes=4, beat_bytes=16)
    m8 = AGCUModel(lanes=8, beat_bytes=16)
    # int8, 4 lanes: 4 vectors per beat; 128 vectors = 32 beats in two full bursts
    assert m4.max_vectors == 64
    assert m4.bursts(Pattern(base=0, counts=(128,), strides=(4,), elem=ELEM_INT8)) == \
        [(0, 16), (256, 16)]
    # int8, 8 lanes, 3 bytes off the beat: 64 vectors of 8 bytes = 512 bytes over 33 beats
    assert m8.bursts(Pattern(base=3, counts=(64,), strides=(8,), elem=ELEM_UINT8)) == \
        [(0, 16), (256, 16), (512, 1)]
    # int16, 8 lanes (16 bytes), 2 bytes off: every vector straddles two beats
    assert m8.bursts(Pattern(base=4096 - 30, counts=(4,), strides=(16,), elem=ELEM_INT16)) == \
        [(4096 - 32, 2), (4096, 3)]
    # a sliding int8 window (stride 1): one beat fetched once while vectors share it
    assert m4.bursts(Pattern(base=5, counts=(8,), strides=(1,), elem=ELEM_INT8)) == [(0, 1)]
    # ... but a window straddling two beats starts before the kept beat: refetched
    assert m4.bursts(Pattern(base=13, counts=(3,), strides=(1,), elem=ELEM_INT8)) == [(0, 2)] * 3
    # element alignment is enforced by the model
    with pytest.raises(ValueError, match="2-aligned"):
        Pattern(base=3, counts=(2,), strides=(16,), elem=ELEM_INT16)
    with pytest.raises(ValueError, match="multiple of 4 bytes"):
        Pattern(base=0, counts=(2,), strides=(6,))
    with pytest.raises(ValueError, match="elem must be 0..3"):
        Pattern(base=0, elem=4)


def test_model_element_widths():
    """The model's element widening and narrowing, against NumPy."""
    m = AGCUModel(lanes=4)
    image = bytes(range(256)) * 2
    for elem, dtype in ((ELEM_INT16, "<i2"), (ELEM_INT8, "i1"), (ELEM_UINT8, "u1")):
        es = ELEM_BYTES[elem]
        pat = Pattern(base=126, counts=(3,), strides=(10 * es,), elem=elem)
        for k, (w, _) in enumerate(m.read(pat, image)):
            a = 126 + 10 * es * k
            expect = np.frombuffer(image[a:a + 4 * es], dtype=dtype).astype(np.int64)
            np.testing.assert_array_equal(w.astype(np.int32) if dtype != "u1" else w, expect)
        mem = bytearray(64)
        vec = np.array([0x8180_7FFE, 0x1234_5678, 0xFFFF_FFFF, 0x0000_0080], dtype=np.uint32)
        m.write(Pattern(base=5 * es, elem=elem), mem, [vec])
        expect = bytearray(64)
        expect[5 * es:9 * es] = vec.astype(dtype).tobytes()
        assert mem == expect


def test_model_matches_numpy_tiles():
    """The model alone: int8/int16/int32 tiles of a matrix read and written
    through a 2-D pattern equal NumPy slicing."""
    rng = np.random.default_rng(0)
    m = AGCUModel(lanes=4)
    for dtype in (np.int8, np.int16, np.int32):
        es = np.dtype(dtype).itemsize
        rows, cols = 12, 64 // es * 2
        a = rng.integers(-100, 100, size=(rows, cols)).astype(dtype)
        image = bytearray(1024) + bytearray(a.tobytes()) + bytearray(1024)
        per_vec = 16 // es
        c0 = 4 // es                     # column offset of the tile: 4 bytes
        pat = Pattern(base=1024 + 3 * cols * es + c0 * es, counts=(2, 5),
                      strides=(16, cols * es))
        got = np.concatenate([w for w, _ in m.read(pat, image)]).view(dtype).reshape(5, -1)
        np.testing.assert_array_equal(got, a[3:8, c0:c0 + 2 * per_vec])


@pytest.mark.parametrize("params", [SMALL, DEFAULT], ids=["lanes4", "lanes8"])
def test_tiles_elem_widths(params):
    """Tiles of int8/uint8/int16/int32 matrices at any element column offset,
    read with the matching ``elem``: lane k of each vector is the element,
    sign- (zero- for uint8) extended to int32, as NumPy's astype. A tile of
    arbitrary int32 values written with ``elem`` stores them truncated (as
    NumPy's astype) into exactly that slice, leaving every other byte."""
    rng = np.random.default_rng(11)
    prng = random.Random(11)
    lanes = params.lanes
    mem = 8192
    top = Top(params, dram_bytes=mem, latency=20)
    cases = []
    kinds = ((np.int8, ELEM_INT8), (np.uint8, ELEM_UINT8), (np.int16, ELEM_INT16),
             (np.int32, ELEM_INT32), (np.int8, ELEM_INT8), (np.int16, ELEM_INT16))
    for dtype, elem in kinds:
        es = np.dtype(dtype).itemsize
        cols = lanes * 3 + int(rng.integers(0, 7))
        rows = int(rng.integers(3, 7))
        pitch = cols * es
        a = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, size=(rows, cols),
                         endpoint=True).astype(dtype)
        a_base = es * int(rng.integers(0, 800 // es))
        b_base = 4096 - es * int(rng.integers(0, 240 // es))     # straddles the 4 KiB page
        r0 = int(rng.integers(0, rows - 2))
        h = rows - r0 - int(rng.integers(0, 2))
        w_vecs = int(rng.integers(1, 3))
        w = w_vecs * lanes
        c0 = int(rng.integers(0, cols - w + 1))                    # any element offset
        tile = Pattern(base=a_base + r0 * pitch + c0 * es, counts=(w_vecs, h),
                       strides=(lanes * es, pitch), last_on=1, elem=elem)
        dst = Pattern(base=b_base + r0 * pitch + c0 * es, counts=(w_vecs, h),
                      strides=(lanes * es, pitch), elem=elem)
        cases.append((dtype, a, a_base, b_base, r0, h, c0, w, tile, dst))

    async def bench(ctx):
        for dtype, a, a_base, b_base, r0, h, c0, w, tile, dst in cases:
            image = bytearray(prng.randbytes(mem))
            image[a_base:a_base + a.nbytes] = a.tobytes()
            b = a[::-1].copy()
            image[b_base:b_base + b.nbytes] = b.tobytes()
            await preload(ctx, top, bytes(image))
            newtile = rng.integers(0, 1 << 32, size=(h, w), dtype=np.uint64).astype(np.uint32)
            got, ars, aws, _ = await run_case(ctx, top, prng, read=tile, write=dst,
                                              wvecs=list(newtile.reshape(-1, lanes)),
                                              stall=6, vstall=0.3)
            lanes_got = np.concatenate([v for v, _ in got]).view(np.int32).reshape(h, w)
            np.testing.assert_array_equal(lanes_got, a[r0:r0 + h, c0:c0 + w].astype(np.int32),
                                          err_msg=f"{dtype.__name__} tile read")
            assert [last for _, last in got] == [int((k + 1) % (w // lanes) == 0)
                                                 for k in range(len(got))]
            after = await readback(ctx, top, mem)
            expect_b = b.copy()
            expect_b[r0:r0 + h, c0:c0 + w] = newtile.astype(dtype)
            got_b = np.frombuffer(after[b_base:b_base + b.nbytes], dtype=dtype).reshape(b.shape)
            np.testing.assert_array_equal(got_b, expect_b, err_msg=f"{dtype.__name__} write")
            # the counters: whole R beats; strobed W bytes = the tile's bytes exactly
            model = AGCUModel(lanes=lanes)
            assert ctx.get(top.agcu.read_bytes) == 16 * model.beats(tile)
            assert ctx.get(top.agcu.write_bytes) == h * w * a.itemsize
            assert after[:b_base] == bytes(image[:b_base])
            assert after[b_base + b.nbytes:] == bytes(image[b_base + b.nbytes:])
            assert ctx.get(top.checker.errors) == 0

    run_testbenches(top, bench)


@pytest.mark.parametrize("params", [SMALL, DEFAULT], ids=["lanes4", "lanes8"])
def test_tiles_int8_int16_int32(params):
    """Tiles of int8/int16/int32 matrices at 4-byte (not beat) aligned column
    offsets: read tiles equal NumPy slices; a tile written into a matrix
    changes exactly that slice and leaves every other byte as it was."""
    rng = np.random.default_rng(7)
    prng = random.Random(7)
    vb = 4 * params.lanes
    mem = 8192
    top = Top(params, dram_bytes=mem, latency=20)
    cases = []
    for dtype in (np.int8, np.int16, np.int32, np.int8, np.int16):
        es = np.dtype(dtype).itemsize
        per_vec = vb // es
        cols = per_vec * 3 + (4 // es) * int(rng.integers(0, 4))
        rows = int(rng.integers(3, 7))
        pitch = cols * es
        a = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, size=(rows, cols),
                         endpoint=True).astype(dtype)
        a_base = 4 * int(rng.integers(0, 200))
        b_base = 4096 - 4 * int(rng.integers(0, 60))        # straddles the 4 KiB page
        r0 = int(rng.integers(0, rows - 2))
        h = rows - r0 - int(rng.integers(0, 2))
        w_vecs = int(rng.integers(1, 3))
        c0 = (4 // es) * int(rng.integers(0, (cols - w_vecs * per_vec) // (4 // es) + 1))
        tile = Pattern(base=a_base + r0 * pitch + c0 * es, counts=(w_vecs, h),
                       strides=(vb, pitch), last_on=1)
        dst = Pattern(base=b_base + r0 * pitch + c0 * es, counts=(w_vecs, h),
                      strides=(vb, pitch))
        cases.append((dtype, a, a_base, b_base, r0, h, c0, w_vecs * per_vec, tile, dst))

    async def bench(ctx):
        for dtype, a, a_base, b_base, r0, h, c0, w, tile, dst in cases:
            image = bytearray(prng.randbytes(mem))
            image[a_base:a_base + a.nbytes] = a.tobytes()
            b = a[::-1].copy()
            image[b_base:b_base + b.nbytes] = b.tobytes()
            await preload(ctx, top, bytes(image))
            newtile = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, size=(h, w),
                                   endpoint=True).astype(dtype)
            flat = newtile.view(np.uint32).reshape(-1, params.lanes)
            got, ars, aws, _ = await run_case(ctx, top, prng, read=tile, write=dst,
                                              wvecs=list(flat), stall=6, vstall=0.3)
            words = np.concatenate([v for v, _ in got])
            np.testing.assert_array_equal(words.view(dtype).reshape(h, w),
                                          a[r0:r0 + h, c0:c0 + w])
            assert [last for _, last in got] == [int((k + 1) % (w // (vb // a.itemsize)) == 0)
                                                 for k in range(len(got))]
            after = await readback(ctx, top, mem)
            expect_b = b.copy()
            expect_b[r0:r0 + h, c0:c0 + w] = newtile
            got_b = np.frombuffer(after[b_base:b_base + b.nbytes], dtype=dtype).reshape(b.shape)
            np.testing.assert_array_equal(got_b, expect_b)
            assert after[:b_base] == bytes(image[:b_base])
            assert after[b_base + b.nbytes:] == bytes(image[b_base + b.nbytes:])
            assert ctx.get(top.checker.errors) == 0

    run_testbenches(top, bench)


@pytest.mark.parametrize("params, seed, ncases", [
    (SMALL, 1, 70), (SMALL, 2, 60), (DEFAULT, 3, 70),
], ids=["lanes4-a", "lanes4-b", "lanes8"])
def test_random_patterns(params, seed, ncases):
    """Random patterns (contiguous, gapped, overlapping, stride 0, negative,
    across pages; every element width at random element-aligned bases and
    strides) with random stalls: read vectors and the written memory
    byte-exact, bursts as the model coalesces them."""
    run_random(params, seed, ncases)


@pytest.mark.parametrize("params, seed, ncases", [
    (SMALL, 21, 60), (DEFAULT, 22, 60),
], ids=["lanes4", "lanes8"])
def test_random_patterns_narrow(params, seed, ncases):
    """As above with int8, uint8 and int16 elements only: odd byte offsets,
    several vectors per beat, vectors straddling beats."""
    run_random(params, seed, ncases, elems=(ELEM_INT16, ELEM_INT8, ELEM_UINT8))


CORNERS = [
    # stride 0, one beat: every vector shares the kept beat (no new beats), so
    # bursts close on MAX_VECTORS; the writes all land on one vector (last wins)
    (SMALL, Pattern(base=64, counts=(70,), strides=(0,), last_on=1),
     Pattern(base=4096 + 64, counts=(70,), strides=(0,))),
    # a sliding window (stride 4 < 16-byte vector) and a stride-0 two-beat vector
    (SMALL, Pattern(base=4, counts=(40, 2), strides=(4, 0), last_on=2),
     Pattern(base=4096 + 8, counts=(35,), strides=(0,))),
    # contiguous 32-byte vectors: a vector's beats fill a 16-beat burst and then
    # reach the last beat of a page (two cuts inside one vector)
    (DEFAULT, Pattern(base=2804, counts=(60,), strides=(32,), last_on=3),
     Pattern(base=8192 + 2804, counts=(60,), strides=(32,))),
    # rows that continue each other across counter wraps, backwards in the outer counter
    (DEFAULT, Pattern(base=8192 + 4, counts=(2, 3, 2), strides=(32, 64, -192)),
     Pattern(base=4092, counts=(3, 2, 2), strides=(32, 96, 192))),
    # int8 stride 0 on one beat (bursts close on max_vectors) and a sliding int8
    # write window (stride 1: every vector overlaps the previous one, last wins)
    (SMALL, Pattern(base=71, counts=(140,), strides=(0,), last_on=1, elem=ELEM_INT8),
     Pattern(base=4096 + 9, counts=(20, 2), strides=(1, 3), elem=ELEM_INT8)),
    # contiguous uint8 / int16 across a page end at odd offsets: 16-beat bursts
    # cut at 4096 while two vectors share each beat
    (DEFAULT, Pattern(base=4096 - 333, counts=(90,), strides=(8,), last_on=3, elem=ELEM_UINT8),
     Pattern(base=8192 + 4096 - 334, counts=(50,), strides=(16,), elem=ELEM_INT16)),
    # int16 rows that continue each other backwards, 2 bytes off the beat
    (DEFAULT, Pattern(base=8192 + 4098, counts=(2, 3, 2), strides=(16, 32, -96),
                      elem=ELEM_INT16),
     Pattern(base=17, counts=(3, 4), strides=(-8, 24), elem=ELEM_INT8)),
]


@pytest.mark.parametrize("params, read, write", CORNERS,
                         ids=[f"corner{k}" for k in range(len(CORNERS))])
def test_corner_patterns(params, read, write):
    rng = random.Random(3)
    mem = 16384
    model = AGCUModel(lanes=params.lanes)
    top = Top(params, dram_bytes=mem, latency=24)
    wvecs = [np.array([rng.getrandbits(32) for _ in range(params.lanes)], dtype=np.uint32)
             for _ in range(write.vectors)]

    async def bench(ctx):
        for stall, vstall in ((0, 0.0), (10, 0.5)):
            image = rng.randbytes(mem)
            await preload(ctx, top, image)
            got, ars, aws, _ = await run_case(ctx, top, rng, read=read, write=write,
                                              wvecs=wvecs, stall=stall, vstall=vstall)
            after = await readback(ctx, top, mem)
            check_against_model(params, model, image, after, (read, write, wvecs),
                                got, ars, aws)
            assert ctx.get(top.checker.errors) == 0

    run_testbenches(top, bench)


def test_random_patterns_long_latency():
    run_random(SMALL, 11, 25, latency=64)


def test_random_patterns_smallest_buffers():
    """The least buffering allowed: credits and outstanding limits bind."""
    run_random(DEFAULT, 12, 25, latency=24, read_buffer_beats=32, read_bursts=1,
               write_bursts=1)


@pytest.mark.slow
@pytest.mark.parametrize("params", [SMALL, DEFAULT, preset("plasticine"),
                                    FabricParams(lanes=4, pmu_banks=4, dram_bytes_per_cycle=8),
                                    FabricParams(lanes=4, pmu_banks=4, dram_bytes_per_cycle=32)],
                         ids=["lanes4", "lanes8", "lanes16", "bus64", "bus256"])
@pytest.mark.parametrize("seed", range(3))
def test_random_patterns_sweep(params, seed):
    run_random(params, 100 + seed, 150, latency=random.Random(seed).choice([8, 64]))


def test_counters_and_status():
    """read_bytes / write_bytes count AXI traffic; busy/done; perf signals
    partition the busy cycles."""
    p = SMALL
    top = Top(p, latency=16, throttle=False)
    read = Pattern(base=4, counts=(20,), strides=(16,))
    write = Pattern(base=1024 + 8, counts=(6,), strides=(32,))
    model = AGCUModel(lanes=4)
    perf = {"active": 0, "stalled": 0, "starved": 0, "busy": 0}

    async def watch(ctx):
        a = top.agcu
        async for _, _, busy, act, stl, stv in ctx.tick().sample(
                a.busy, a.perf_active, a.perf_stalled, a.perf_starved):
            if busy:
                perf["busy"] += 1
                assert act + stl + stv == 1
                perf["active"] += act
                perf["stalled"] += stl
                perf["starved"] += stv
            else:
                assert act + stl + stv == 0

    restarts = []

    async def restart(ctx):
        # a start pulse while busy is ignored (the results below are unchanged)
        await ctx.tick().repeat(30)
        assert ctx.get(top.agcu.busy)
        ctx.set(top.agcu.start, 1)
        await ctx.tick()
        ctx.set(top.agcu.start, 0)
        restarts.append(1)

    async def bench(ctx):
        rng = random.Random(5)
        assert not ctx.get(top.agcu.busy) and not ctx.get(top.agcu.done)
        wv = [np.arange(4, dtype=np.uint32) + 4 * k for k in range(6)]
        got, ars, aws, cycles = await run_case(ctx, top, rng, read=read, write=write,
                                               wvecs=wv, vstall=0.5)
        assert ctx.get(top.agcu.done) and not ctx.get(top.agcu.busy)
        assert ctx.get(top.agcu.read_bytes) == 16 * model.beats(read) == 16 * 21
        assert ctx.get(top.agcu.write_bytes) == 6 * 16
        assert ctx.get(top.dram.read_bytes) == ctx.get(top.agcu.read_bytes)
        assert ctx.get(top.dram.write_bytes) == ctx.get(top.agcu.write_bytes)
        # done stays until the next start
        await ctx.tick().repeat(3)
        assert ctx.get(top.agcu.done)
        assert restarts == [1]
        assert perf["active"] == 20 + 6 and perf["stalled"] > 0 and perf["starved"] > 0

    run_testbenches(top, bench, restart, processes=[watch])


def test_empty_and_disabled_streams():
    top = Top(SMALL, latency=8, throttle=False)

    async def bench(ctx):
        rng = random.Random(1)
        for read, write in [(None, None), (Pattern(base=0, counts=(0,), strides=(16,)), None),
                            (None, Pattern(base=64, counts=(3, 0), strides=(16, 0)))]:
            got, ars, aws, cycles = await run_case(ctx, top, rng, read=read, write=write)
            assert got == [] and ars == [] and aws == [] and cycles <= 3

    run_testbenches(top, bench)


# -- bandwidth -----------------------------------------------------------------------------

LANES16 = preset("plasticine")     # 16 lanes: an int8 vector is one 16-byte beat


def measure_stream(params, nbytes, *, copy: bool, offset=0, latency=64, elem=ELEM_INT32):
    """A contiguous read stream of `nbytes` of `elem` elements from byte
    `offset` (consumed at once), or a copy read -> o_vec -> i_vec -> write of
    them, against the DRAM at `latency` cycles and 16 B/cycle shared by reads
    and writes. Returns the bytes moved (read + written tensor bytes) per
    cycle as a fraction of the DRAM's bandwidth, from start to done, and
    details: cycles, bursts, the AGCU's read_bytes/write_bytes counters (AXI
    traffic), and the steady state (the same fraction over the middle half
    of the o_vec transfers)."""
    vb = params.lanes * ELEM_BYTES[elem]
    bpc = params.dram_bytes_per_cycle
    mem = 2 * nbytes + 8192
    top = Top(params, dram_bytes=1 << (mem - 1).bit_length(), latency=latency, throttle=False,
              loopback=copy)
    model = AGCUModel(lanes=params.lanes, beat_bytes=bpc)
    n = nbytes // vb
    read = Pattern(base=offset, counts=(n,), strides=(vb,), elem=elem)
    write = (Pattern(base=nbytes + 4096 + offset, counts=(n,), strides=(vb,), elem=elem)
             if copy else None)
    result = {}

    async def bench(ctx):
        rng = random.Random(0)
        image = rng.randbytes(nbytes + offset + 2 * bpc)
        await preload(ctx, top, image)
        ofires = []
        start = ctx.get(top.cycle)
        got, ars, aws, cycles = await run_case(ctx, top, rng, read=read, write=write,
                                               timeout=20 * n + 1000, ofires=ofires)
        result["cycles"] = ctx.get(top.cycle) - start - 1     # start pulse to done
        assert result["cycles"] == cycles + 1
        src = image[offset:offset + nbytes]
        if copy:
            dst = nbytes + 4096 + offset
            after = await readback(ctx, top, dst + nbytes + 2 * bpc)
            assert after[dst:dst + nbytes] == src
        else:
            expect = model.read(read, image)
            assert len(got) == n
            np.testing.assert_array_equal(np.concatenate([w for w, _ in got]),
                                          np.concatenate([w for w, _ in expect]))
        assert ars == model.bursts(read)
        result["read_bytes"] = ctx.get(top.agcu.read_bytes)
        result["write_bytes"] = ctx.get(top.agcu.write_bytes)
        assert result["read_bytes"] == bpc * model.beats(read)
        result["read_bursts"] = len(ars)
        result["burst_beats"] = max(b for _, b in ars)
        # steady state: the middle half of the o_vec transfers
        per_vec = vb * (2 if copy else 1)
        mid = ofires[n // 4:3 * n // 4]
        result["steady"] = (len(mid) - 1) * per_vec / ((mid[-1] - mid[0]) * bpc)
        result["vectors_per_cycle"] = (len(mid) - 1) / (mid[-1] - mid[0])

    run_testbenches(top, bench)
    moved = nbytes * (2 if copy else 1)
    result["bytes_per_cycle"] = moved / result["cycles"]
    result["axi_bytes_per_cycle"] = (result["read_bytes"] + result["write_bytes"]) / result["cycles"]
    return moved / (result["cycles"] * bpc), result


@pytest.mark.parametrize("offset", [0, 4], ids=["aligned", "offset4"])
@pytest.mark.parametrize("params", [SMALL, DEFAULT], ids=["lanes4", "lanes8"])
def test_streaming_read_bandwidth(params, offset, record_property):
    """Read-only streaming of 16 KiB of 32-bit words with 64 cycles of DRAM latency."""
    frac, r = measure_stream(params, 16384, copy=False, offset=offset)
    record_property("read_fraction", round(frac, 4))
    record_property("read_steady_fraction", round(r["steady"], 4))
    print(f"\nread-only streaming, lanes={params.lanes}, offset {offset}: {frac:.3f} of "
          f"{params.dram_bytes_per_cycle} B/cycle start to done ({r['cycles']} cycles, 16 KiB, "
          f"64-cycle latency), steady state {r['steady']:.3f}")
    assert frac >= 0.9 and r["steady"] >= 0.99 and r["burst_beats"] == MAX_BURST


# A vector is one transfer per cycle on o_vec, so a stream of vectors narrower
# than a beat is bounded by the vector port, not by DRAM: lanes x element bytes
# per cycle. The bound below is min(DRAM, port); where the vector is at least a
# beat (int16 at 8 lanes, int8 at 16 lanes) it is the DRAM's 16 B/cycle.
NARROW_READS = [
    (DEFAULT, ELEM_INT16, 0), (DEFAULT, ELEM_INT16, 6),
    (LANES16, ELEM_INT8, 0), (LANES16, ELEM_INT8, 5),
    (DEFAULT, ELEM_INT8, 0), (DEFAULT, ELEM_UINT8, 3),
    (SMALL, ELEM_INT16, 2), (SMALL, ELEM_INT8, 7),
]


@pytest.mark.parametrize("params, elem, offset", NARROW_READS,
                         ids=[f"lanes{p.lanes}-{['int32', 'int16', 'int8', 'uint8'][e]}-off{o}"
                              for p, e, o in NARROW_READS])
def test_streaming_read_bandwidth_narrow(params, elem, offset, record_property):
    """Long contiguous int16/int8 reads (16 KiB, 64 cycles of latency) at
    element offsets: bytes per cycle from start to done >= 90% of min(DRAM
    bandwidth, vector port), one vector per cycle in steady state, 16-beat
    bursts, the AGCU's read_bytes counter equal to the model's beats."""
    nbytes = 16384 if params.lanes * ELEM_BYTES[elem] >= 8 else 8192
    frac, r = measure_stream(params, nbytes, copy=False, offset=offset, elem=elem)
    bpc = params.dram_bytes_per_cycle
    bound = min(1.0, params.lanes * ELEM_BYTES[elem] / bpc)
    record_property("read_fraction", round(frac, 4))
    record_property("read_bytes_per_cycle", round(r["bytes_per_cycle"], 3))
    record_property("read_steady_fraction", round(r["steady"], 4))
    print(f"\nread-only streaming, lanes={params.lanes}, elem {elem}, offset {offset}: "
          f"{r['bytes_per_cycle']:.2f} tensor B/cycle = {frac:.3f} of {bpc} B/cycle start to "
          f"done ({r['cycles']} cycles, {nbytes} B; AXI {r['axi_bytes_per_cycle']:.2f} B/cycle "
          f"from read_bytes), bound {bound:.2f}, steady state {r['steady']:.3f} "
          f"({r['vectors_per_cycle']:.3f} vectors/cycle)")
    assert frac >= 0.9 * bound
    assert r["steady"] >= 0.99 * bound and r["burst_beats"] == MAX_BURST


COPIES = [(SMALL, ELEM_INT32, 0), (SMALL, ELEM_INT32, 4), (DEFAULT, ELEM_INT32, 0),
          (DEFAULT, ELEM_INT32, 4), (DEFAULT, ELEM_INT8, 3), (DEFAULT, ELEM_INT16, 10)]


@pytest.mark.parametrize("params, elem, offset", COPIES,
                         ids=[f"lanes{p.lanes}-{['int32', 'int16', 'int8', 'uint8'][e]}-off{o}"
                              for p, e, o in COPIES])
def test_streaming_copy_bandwidth(params, elem, offset, record_property):
    """DRAM -> o_vec -> i_vec -> DRAM, 8 KiB each way: reads and writes share
    the DRAM's 16 B/cycle, so the figure is (read + written bytes) / cycle.
    With int8/int16 the read widens and the write narrows: an exact copy."""
    frac, r = measure_stream(params, 8192, copy=True, offset=offset, elem=elem)
    record_property("copy_fraction", round(frac, 4))
    record_property("copy_steady_fraction", round(r["steady"], 4))
    print(f"\nstreaming copy, lanes={params.lanes}, elem {elem}, offset {offset}: {frac:.3f} "
          f"of {params.dram_bytes_per_cycle} B/cycle (read + write) start to done "
          f"({r['cycles']} cycles, 8 KiB each way), steady state {r['steady']:.3f}")
    # Writes are store-and-forward per burst (the AW waits for all its beats,
    # which keeps the interconnect deadlock-free), so the last burst's W
    # starts after its data is complete: about 40 cycles more from start to
    # done for an int8 stream, whose vectors fill a burst at half the beat rate.
    assert frac >= 0.88 and r["steady"] >= 0.99


@pytest.mark.parametrize("elem", [ELEM_INT32, ELEM_INT16])
def test_write_is_store_and_forward(elem):
    """Vectors arrive slowly: a burst's AW leaves only when every vector of
    the burst has arrived, and no W beat leaves before its AW (the
    interconnect routes W by the order of granted AWs; an early AW or W
    would make other masters' writes wait on this stream's data)."""
    from tessera.hw.params import preset as _preset
    p = _preset("default")
    dut = AGCU(p)
    if elem == ELEM_INT32:
        wr, nv = Pattern(base=0x10780, counts=(5,), strides=(32,)), 5
    else:
        wr, nv = Pattern(base=0x10380, counts=(2, 5), strides=(16, 32), elem=ELEM_INT16), 10
    cfg = agcu_config(write=wr)
    cfg["scal"] = 0
    events = []

    async def bench(ctx):
        ctx.set(dut.config, dut.config.shape().const(cfg))
        ctx.set(dut.axi.aw.ready, 1)
        ctx.set(dut.axi.w.ready, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        sent = pending_b = 0
        for cyc in range(40 * nv + 200):
            if cyc % 40 == 0 and sent < nv:
                ctx.set(dut.i_vec.valid, 1)
                ctx.set(dut.i_vec.payload.data[0], sent + 1)
            if ctx.get(dut.axi.aw.valid):
                events.append(("AW", sent, ctx.get(dut.axi.aw.payload.len) + 1))
                pending_b += 1
            if ctx.get(dut.axi.w.valid):
                events.append(("W", sent))
            ctx.set(dut.axi.b.valid, 1 if pending_b else 0)
            took = ctx.get(dut.i_vec.valid) and ctx.get(dut.i_vec.ready)
            b = ctx.get(dut.axi.b.valid) and ctx.get(dut.axi.b.ready)
            await ctx.tick()
            if took:
                sent += 1
                ctx.set(dut.i_vec.valid, 0)
            pending_b -= b
            if ctx.get(dut.done):
                events.append(("done",))
                return

    run_testbenches(dut, bench)
    assert events[-1] == ("done",), events[-5:]
    aw = [e for e in events if e[0] == "AW"]
    assert aw == [("AW", nv, 10)]                 # one 10-beat burst, after the last vector
    first_w = next(i for i, e in enumerate(events) if e[0] == "W")
    assert first_w > events.index(aw[0])
    assert sum(e[0] == "W" for e in events) == 10
