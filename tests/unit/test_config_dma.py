"""Config DMA and AXI4 interconnect against the RTL DRAM: two DMAs share
one DRAM port; each receives exactly its region, `last` on its final beat,
and a lone DMA streams at the DRAM's bandwidth after one read latency."""

import random

from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from tessera.hw.axi import AXI4Params
from tessera.hw.axi_interconnect import AXI4Interconnect
from tessera.hw.config_dma import ConfigDMA
from tessera.hw.dram import DRAM

from .streams import consume

P = AXI4Params(data_width=128)


class Top(wiring.Component):
    def __init__(self, n, latency=64):
        self.n = n
        self.dram = DRAM(axi_params=None or AXI4Params(data_width=128, id_width=max(1, (n - 1).bit_length())),
                         size_bytes=1 << 16, latency=latency)
        self.dmas = [ConfigDMA(P, 4) for _ in range(n)]
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dram = self.dram
        m.submodules.xbar = xbar = AXI4Interconnect(P, self.n)
        for i, dma in enumerate(self.dmas):
            m.submodules[f"dma{i}"] = dma
            wiring.connect(m, dma.axi, xbar.masters[i])
        wiring.connect(m, xbar.slave, self.dram.axi)
        return m


def run(n, regions, latency=64, stall=0.0, seed=0):
    top = Top(n, latency)
    rng = random.Random(seed)
    words = {}
    got, cycles = {}, {}

    async def preload_and_start(ctx):
        for i in range(1 << 12):
            value = rng.getrandbits(128)
            ctx.set(top.dram.memory.data[i], value)
            words[i] = value
        for dma, (addr, length) in zip(top.dmas, regions):
            ctx.set(dma.addr, addr)
            ctx.set(dma.length, length)
            ctx.set(dma.start, 1)
        await ctx.tick()
        for dma in top.dmas:
            ctx.set(dma.start, 0)

    def sink(i):
        async def bench(ctx):
            await ctx.tick()
            cyc = []
            got[i] = await consume(ctx, top.dmas[i].o, regions[i][1], rng=random.Random(i),
                                   stall=stall, cycles=cyc)
            cycles[i] = cyc
        return bench

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(preload_and_start)
    for i in range(n):
        sim.add_testbench(sink(i))
    sim.run()
    for i, (addr, length) in enumerate(regions):
        expect = [words[addr // 16 + k] | ((k == length - 1) << 128) for k in range(length)]
        assert got[i] == expect, f"DMA {i} data"
    return cycles


def test_two_dmas_share_the_dram():
    run(2, [(0x100, 37), (0x4F80, 50)], latency=20, stall=0.3, seed=1)   # crosses 4 KiB


def test_dma_runs_at_dram_bandwidth():
    length = 300
    cycles = run(1, [(0x0, length)], latency=64)[0]
    span = cycles[-1] - cycles[0]
    assert (length - 1) / span >= 0.95, f"{(length - 1) / span:.3f} beats/cycle"
    assert cycles[0] <= 64 + 12        # first beat after about one latency
