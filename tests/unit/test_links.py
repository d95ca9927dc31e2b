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


def _equals_amaranth_fifo(ref, dut, width, *, seed, cycles):
    """Drive Amaranth's FIFO `ref` and the StreamFIFO `dut` with the same
    random pushes and pops; every port must agree in every cycle (the head
    where valid). Returns how many words left both."""
    from amaranth import Elaboratable, Module, Value

    class Pair(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.a, m.submodules.b = ref, dut
            return m

    rng = random.Random(seed)
    moved = []

    async def bench(ctx):
        for cycle in range(cycles):
            valid, word, ready = rng.random() < 0.6, rng.getrandbits(width), rng.random() < 0.6
            ctx.set(ref.w_en, valid)
            ctx.set(ref.w_data, word)
            ctx.set(ref.r_en, ready)
            ctx.set(dut.i.valid, valid)
            ctx.set(Value.cast(dut.i.payload), word)
            ctx.set(dut.o.ready, ready)
            assert [ctx.get(x) for x in (ref.w_rdy, ref.r_rdy, ref.level)] == \
                [ctx.get(x) for x in (dut.i.ready, dut.o.valid, dut.level)], cycle
            assert ctx.get(dut.many) == (ctx.get(ref.level) >= 2), cycle
            if ctx.get(ref.r_rdy):
                assert ctx.get(ref.r_data) == ctx.get(Value.cast(dut.o.payload)), cycle
                moved.append(ready)
            await ctx.tick()

    run_testbenches(Pair(), bench)
    return sum(moved)


@pytest.mark.parametrize("width", [17, 70])
@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_registered_fifo_equals_syncfifobuffered_cycle_by_cycle(depth, width):
    """A registered StreamFIFO (a ring and a head register, the head split
    into enable slices when wide: 70 bits are two) equals Amaranth's
    SyncFIFOBuffered in every port in every cycle, under the same random
    pushes and pops."""
    from amaranth import unsigned
    from amaranth.lib import fifo

    moved = _equals_amaranth_fifo(fifo.SyncFIFOBuffered(width=width, depth=depth),
                                  StreamFIFO(unsigned(width), depth), width,
                                  seed=depth * 100 + width, cycles=800)
    assert moved > 200                           # words really flowed through both


@pytest.mark.parametrize("copies", [1, 3])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_comb_read_fifo_equals_syncfifo_cycle_by_cycle(depth, copies):
    """A combinationally read StreamFIFO (one read pointer, or `copies` of it
    over slices of the storage) equals Amaranth's SyncFIFO in every port in
    every cycle, under the same random pushes and pops."""
    from amaranth.lib import fifo

    moved = _equals_amaranth_fifo(fifo.SyncFIFO(width=17, depth=depth),
                                  StreamFIFO(LAYOUT, depth, registered=False,
                                             read_copies=copies),
                                  17, seed=depth, cycles=600)
    assert moved > 150                           # words really flowed through both
