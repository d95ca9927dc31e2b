"""The fabric on Amaranth's simulator, configured over its config bus:
routes on every network (vector, scalar, control) and a multicast to two
edge ports, under random gaps and backpressure."""

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from tessera.compiler.bitstream import FabricConfig
from tessera.compiler.route import compile_route
from tessera.hw.fabric import Fabric
from tessera.hw.links import network_layout
from tessera.hw.params import preset
from tessera.hw.topology import Topology

from .streams import consume, produce


async def configure(ctx, fabric, config):
    """Write the payload beat by beat over the config bus, then commit."""
    B = config.params.config_beat_words
    words = config.payload()
    words += [0] * (-len(words) % B)
    beat_layout = data.ArrayLayout(32, B)
    for addr in range(len(words) // B):
        ctx.set(fabric.cfg.write, 1)
        ctx.set(fabric.cfg.addr, addr)
        ctx.set(fabric.cfg.data, beat_layout.const(words[addr * B:(addr + 1) * B]))
        await ctx.tick()
    ctx.set(fabric.cfg.write, 0)
    ctx.set(fabric.cfg.commit, 1)
    await ctx.tick()
    ctx.set(fabric.cfg.commit, 0)
    await ctx.tick().repeat(2)


def run(params, config, network, src, dsts, words, seed):
    fabric = Fabric(params)
    layout = network_layout(params, network)
    rng = random.Random(seed)
    items = [rng.getrandbits(layout.size) for _ in range(words)]
    got = {}
    configured = []

    async def source(ctx):
        await configure(ctx, fabric, config)
        configured.append(True)
        await produce(ctx, getattr(fabric, f"edge_in_{network}")[src],
                      [layout.from_bits(x) for x in items], rng=random.Random(seed + 1), idle=0.3)

    def sink(dst):
        async def bench(ctx):
            while not configured:
                await ctx.tick()
            got[dst] = await consume(ctx, getattr(fabric, f"edge_out_{network}")[dst], words,
                                     rng=random.Random(seed + 2 + dst), stall=0.3)
        return bench

    sim = Simulator(fabric)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    for d in dsts:
        sim.add_testbench(sink(d))
    sim.run()
    return items, got


@pytest.mark.parametrize("network", ["vec", "scal", "ctrl"])
def test_route_on_every_network(network):
    p = preset("small")
    route = compile_route(p, 5, network=network)
    items, got = run(p, route.config, network, route.src, [route.dst], 120, seed=len(network))
    assert got[route.dst] == items


def test_multicast_to_two_edge_ports():
    """Switch (0,0) sends its west input to its north and west outputs."""
    p = preset("small")
    topo = Topology(p)
    config = FabricConfig(p)
    ins, outs = topo.switch_inputs("scal"), topo.switch_outputs("scal")
    src = topo.find_edge("scal", "in", "W", 0, 0)
    sel = ins.index(("W", 0))
    cfg = [{"en": 0, "sel": 0} for _ in outs]
    cfg[outs.index(("N", 0))] = {"en": 1, "sel": sel}
    cfg[outs.index(("W", 0))] = {"en": 1, "sel": sel}
    config.set("sw_0_0", {"scal": cfg})
    dsts = [topo.find_edge("scal", "out", "N", 0, 0), topo.find_edge("scal", "out", "W", 0, 0)]
    items, got = run(p, config, "scal", src, dsts, 150, seed=11)
    assert got == {d: items for d in dsts}
