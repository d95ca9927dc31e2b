"""Hop and StreamFIFO against their model (an ideal queue) under random gaps
and random backpressure, plus the one-transfer-per-cycle requirement."""

import random

import pytest
from amaranth.lib import data

from tessera.hw.links import Hop, StreamFIFO

from .streams import consume, produce, run_testbenches

LAYOUT = data.StructLayout({"data": 16, "last": 1})


def run_queue(dut, items, *, seed, idle, stall):
    rng_p, rng_c = random.Random(seed), random.Random(seed + 1)
    got, cycles = [], []

    async def producer(ctx):
        await produce(ctx, dut.i, [LAYOUT.from_bits(x) for x in items], rng=rng_p, idle=idle)

    async def consumer(ctx):
        got.extend(await consume(ctx, dut.o, len(items), rng=rng_c, stall=stall, cycles=cycles))

    run_testbenches(dut, producer, consumer)
    return got, cycles


QUEUES = [lambda: Hop(LAYOUT), lambda: StreamFIFO(LAYOUT, 4),
          lambda: StreamFIFO(LAYOUT, 4, registered=False),
          lambda: StreamFIFO(LAYOUT, 2, registered=False),
          lambda: StreamFIFO(LAYOUT, 3, registered=False, read_copies=4)]
QUEUE_IDS = ["hop", "fifo", "fifo-comb", "fifo-comb-depth2", "fifo-comb-split"]


@pytest.mark.parametrize("make", QUEUES, ids=QUEUE_IDS)
@pytest.mark.parametrize("seed", range(4))
def test_queue_matches_model_under_backpressure(make, seed):
    rng = random.Random(seed)
    items = [rng.getrandbits(17) for _ in range(300)]
    got, _ = run_queue(make(), items, seed=seed, idle=0.3, stall=0.4)
    assert got == items          # nothing lost, duplicated or reordered


@pytest.mark.parametrize("make", QUEUES, ids=QUEUE_IDS)
def test_one_transfer_per_cycle(make):
    items = list(range(200))
    got, cycles = run_queue(make(), items, seed=7, idle=0.0, stall=0.0)
    assert got == items
    span = cycles[-1] - cycles[0]
    assert (len(items) - 1) / span >= 0.99, f"throughput {(len(items) - 1) / span:.3f}"


def test_fifo_depth_is_validated():
    with pytest.raises(ValueError, match="depth"):
        StreamFIFO(LAYOUT, 0)
    with pytest.raises(ValueError, match="read_copies"):
        StreamFIFO(LAYOUT, 4, read_copies=2)          # registered: one head register


@pytest.mark.parametrize("width", [17, 70])
@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_registered_fifo_equals_syncfifobuffered_cycle_by_cycle(depth, width):
    """A registered StreamFIFO (a ring and a head register, the head split
    into enable slices when wide: 70 bits are two) equals Amaranth's
    SyncFIFOBuffered in every port in every cycle, under the same random
    pushes and pops."""
    from amaranth import Elaboratable, Module, unsigned
    from amaranth.lib import fifo

    class Pair(Elaboratable):
        def __init__(self):
            self.a = fifo.SyncFIFOBuffered(width=width, depth=depth)
            self.b = StreamFIFO(unsigned(width), depth)

        def elaborate(self, platform):
            m = Module()
            m.submodules.a, m.submodules.b = self.a, self.b
            return m

    dut = Pair()
    a, b = dut.a, dut.b
    rng = random.Random(depth * 100 + width)
    flow = []

    async def bench(ctx):
        for cycle in range(800):
            valid, word, ready = rng.random() < 0.6, rng.getrandbits(width), rng.random() < 0.6
            ctx.set(a.w_en, valid)
            ctx.set(a.w_data, word)
            ctx.set(a.r_en, ready)
            ctx.set(b.i.valid, valid)
            ctx.set(b.i.payload, word)
            ctx.set(b.o.ready, ready)
            assert [ctx.get(x) for x in (a.w_rdy, a.r_rdy, a.level)] == \
                [ctx.get(x) for x in (b.i.ready, b.o.valid, b.level)], cycle
            assert ctx.get(b.many) == (ctx.get(a.level) >= 2), cycle
            if ctx.get(a.r_rdy):
                assert ctx.get(a.r_data) == ctx.get(b.o.payload), cycle
                flow.append(ready)
            await ctx.tick()

    run_testbenches(dut, bench)
    assert sum(flow) > 200                       # words really flowed through both


@pytest.mark.parametrize("copies", [1, 3])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_comb_read_fifo_equals_syncfifo_cycle_by_cycle(depth, copies):
    """A combinationally read StreamFIFO (one read pointer, or `copies` of it
    over slices of the storage) equals Amaranth's SyncFIFO in every port in
    every cycle, under the same random pushes and pops."""
    from amaranth import Elaboratable, Module
    from amaranth.lib import fifo

    class Pair(Elaboratable):
        def __init__(self):
            self.a = fifo.SyncFIFO(width=17, depth=depth)
            self.b = StreamFIFO(LAYOUT, depth, registered=False, read_copies=copies)

        def elaborate(self, platform):
            m = Module()
            m.submodules.a, m.submodules.b = self.a, self.b
            return m

    dut = Pair()
    a, b = dut.a, dut.b
    rng = random.Random(depth)

    async def bench(ctx):
        for cycle in range(600):
            valid, word, ready = rng.random() < 0.6, rng.getrandbits(17), rng.random() < 0.6
            ctx.set(a.w_en, valid)
            ctx.set(a.w_data, word)
            ctx.set(a.r_en, ready)
            ctx.set(b.i.valid, valid)
            ctx.set(b.i.payload.as_value(), word)
            ctx.set(b.o.ready, ready)
            assert [ctx.get(x) for x in (a.w_rdy, a.r_rdy, a.level)] == \
                [ctx.get(x) for x in (b.i.ready, b.o.valid, b.level)], cycle
            if ctx.get(a.r_rdy):
                assert ctx.get(a.r_data) == ctx.get(b.o.payload.as_value()), cycle
            await ctx.tick()

    run_testbenches(dut, bench)
