"""The shared unit helpers of hw/unit.py against Python models, on pysim:
``flagged_counter`` (the token and credit counters of the PCU and PMU) under
random up/down/load, and ``settled_config`` (the registered configuration
and its two quiet cycles after a change)."""

import random

from amaranth import Elaboratable, Module, Signal
from amaranth.lib import data

from tessera.hw.unit import flagged_counter, settled_config

from .streams import run_testbenches

LIMIT = 5


class _Counter(Elaboratable):
    def __init__(self, reset):
        self.reset = reset
        self.up, self.down, self.load, self.value = Signal(), Signal(), Signal(), Signal(3)

    def elaborate(self, platform):
        m = Module()
        self.count, self.nz, self.full = flagged_counter(
            m, "c", LIMIT, up=self.up, down=self.down, reset=self.reset,
            load=(self.load, self.value))
        return m


def test_flagged_counter_matches_its_model():
    for reset in (0, LIMIT):
        dut = _Counter(reset)
        rng = random.Random(reset)

        async def bench(ctx):
            count = reset
            for _ in range(2000):
                assert ctx.get(dut.count) == count
                assert ctx.get(dut.nz) == (count != 0)
                assert ctx.get(dut.full) == (count == LIMIT)
                load = rng.random() < 0.05
                value = rng.randrange(LIMIT + 1)
                up = count < LIMIT and rng.random() < 0.5
                down = count > 0 and rng.random() < 0.5
                # up and down together keep the count, at either end too
                if rng.random() < 0.1:
                    up = down = True
                ctx.set(dut.up, up)
                ctx.set(dut.down, down)
                ctx.set(dut.load, load)
                ctx.set(dut.value, value)
                await ctx.tick()
                count = value if load else count + up - down

        run_testbenches(dut, bench)


LAYOUT = data.StructLayout({"en": 1, "x": 7})


class _Settle(Elaboratable):
    def __init__(self):
        self.config = Signal(LAYOUT)

    def elaborate(self, platform):
        m = Module()
        self.cfg, self.quiet = settled_config(m, self.config)
        return m


def test_settled_config_is_quiet_for_two_cycles_after_a_change():
    dut = _Settle()
    rng = random.Random(4)

    async def bench(ctx):
        history = [0]                     # the config value at each past cycle
        for cycle in range(400):
            value = history[-1] if rng.random() < 0.8 else rng.getrandbits(8)
            ctx.set(dut.config.as_value(), value)
            await ctx.tick()
            history.append(value)
            # the copy holds the value just sampled; quiet is 0 in the two
            # cycles after a change: it is 1 only if the last two edges saw
            # no change
            assert ctx.get(dut.cfg.as_value()) == history[-1]
            if cycle >= 2:
                want = history[-1] == history[-2] == history[-3]
                assert ctx.get(dut.quiet) == want, cycle

    run_testbenches(dut, bench)
