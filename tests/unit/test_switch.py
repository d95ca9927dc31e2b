"""Crossbar (one network of a switch) and Switch against the model: every
enabled output delivers, in order, exactly the words of the input it
selects; a multicast input is consumed once, when all its outputs took it."""

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from tessera.hw.params import preset
from tessera.hw.switch import Crossbar, Switch, switch_config_layout, switch_ports

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
