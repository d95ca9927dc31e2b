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
        self.copies = [Signal(name=f"quiet{i}_rep") for i in range(2)]
        self.cfg, self.quiet = settled_config(m, self.config, quiet_copies=self.copies)
        return m


def test_settled_config_is_quiet_for_two_cycles_after_a_change():
    """The copy takes only values the configuration had when it loaded,
    catches up within three cycles of the configuration holding still, and
    quiet is 0 in the two cycles after the copy changes and 1 once the copy
    has held still for two and the configuration has equalled it for four.
    Its copies (`quiet_copies`) equal it in every cycle."""
    dut = _Settle()
    rng = random.Random(4)

    async def bench(ctx):
        configs, copies, quiets = [], [], []
        for cycle in range(600):
            value = (configs[-1] if configs and rng.random() < 0.85
                     else rng.getrandbits(8))
            ctx.set(dut.config.as_value(), value)
            configs.append(value)
            await ctx.tick()
            copies.append(ctx.get(dut.cfg.as_value()))   # after the edge ending `cycle`
            quiets.append(ctx.get(dut.quiet))
            assert [ctx.get(c) for c in dut.copies] == [quiets[-1]] * 2, cycle
            if len(copies) >= 2 and copies[-1] != copies[-2]:
                assert copies[-1] == configs[-1], cycle        # loaded at this edge
            if len(configs) >= 3 and configs[-1] == configs[-2] == configs[-3]:
                assert copies[-1] == configs[-1], cycle
            # the copy changed at edge c: quiet is 0 after edges c and c + 1
            for back in (1, 2):
                if len(copies) > back and copies[-back] != copies[-back - 1]:
                    assert quiets[-1] == 0, cycle
            if len(configs) >= 4 and copies[-3:] == [copies[-1]] * 3 and \
                    configs[-4:] == [copies[-1]] * 4:
                assert quiets[-1] == 1, cycle
        assert 0 < sum(quiets) < len(quiets)

    run_testbenches(dut, bench)
