"""The shared unit helpers against Python models, on pysim:
``flagged_counter`` (the token and credit counters of the PCU and PMU) under
random up/down/load, ``ahead_flag`` (the PCU's firing flags, computed a
cycle ahead) beside it, and ``settled_config`` (the registered
configuration and its two quiet cycles after a change)."""

import random

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.lib import data

from tessera.hw.links import ahead_flag
from tessera.hw.unit import flagged_counter, settled_config

from .streams import run_testbenches

LIMIT = 5


class _Counter(Elaboratable):
    """A flagged counter, and a consumer's flag ahead of it: the consumer
    fires (``fire``) and takes one (``take``), and needs the counter in the
    next cycle as ``need_fire`` or ``need_hold`` says."""

    def __init__(self, reset):
        self.reset = reset
        self.up, self.down, self.load, self.value = Signal(), Signal(), Signal(), Signal(3)
        self.fire, self.take = Signal(), Signal()
        self.need_fire, self.need_hold, self.need_load = Signal(), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        self.count, self.nz, self.full, self.many = flagged_counter(
            m, "c", LIMIT, up=self.up, down=self.down, reset=self.reset,
            load=(self.load, self.value))
        self.flag = ahead_flag(m, "ok", nz=self.nz, many=self.many, up=self.up, fire=self.fire,
                               take=self.take, need_fire=self.need_fire,
                               need_hold=self.need_hold,
                               load=(self.load, ~self.need_load | (self.value != 0)))
        return m


def test_flagged_counter_and_its_ahead_flag_match_their_model():
    """Every cycle: the count and its flags (nz, full, many) as the model
    says, and the ahead flag equal to ``~need | count != 0`` for the need
    the consumer chose a cycle before."""
    for reset in (0, 1, LIMIT):
        dut = _Counter(reset)
        rng = random.Random(reset)

        async def bench(ctx):
            count, need = reset, False       # at reset the consumer needs nothing
            for _ in range(3000):
                assert ctx.get(dut.count) == count
                assert ctx.get(dut.nz) == (count != 0)
                assert ctx.get(dut.full) == (count == LIMIT)
                assert ctx.get(dut.many) == (count >= 2)
                assert ctx.get(dut.flag) == (not need or count != 0)
                load = rng.random() < 0.05
                value = rng.randrange(LIMIT + 1)
                up = count < LIMIT and rng.random() < 0.5
                # the consumer fires (never while loading) and may take one
                fire = not load and rng.random() < 0.5
                take = fire and count > 0 and rng.random() < 0.7
                if rng.random() < 0.1 and count > 0 and count < LIMIT and not load:
                    up = fire = take = True            # up and down together keep the count
                need_fire, need_hold, need_load = (rng.random() < 0.7 for _ in range(3))
                # `take` may hold without a firing (it is then not a take)
                take_in = take if fire else rng.random() < 0.5
                for sig, v in ((dut.up, up), (dut.down, take), (dut.load, load),
                               (dut.value, value), (dut.fire, fire), (dut.take, take_in),
                               (dut.need_fire, need_fire), (dut.need_hold, need_hold),
                               (dut.need_load, need_load)):
                    ctx.set(sig, v)
                await ctx.tick()
                count = value if load else count + up - take
                need = need_load if load else need_fire if fire else need_hold

        run_testbenches(dut, bench)


LAYOUT = data.StructLayout({"en": 1, "x": 7})


class _Settle(Elaboratable):
    def __init__(self):
        self.config = Signal(LAYOUT)

    def elaborate(self, platform):
        m = Module()
        self.copies = [Signal(name=f"quiet{i}_rep") for i in range(2)]
        self.runs = [Signal(name=f"run{i}_rep") for i in range(2)]
        self.cfg, self.quiet = settled_config(m, self.config, quiet_copies=self.copies,
                                              runs=self.runs, run_enable=lambda c: c.en)
        return m


def test_settled_config_is_quiet_for_two_cycles_after_a_change():
    """The copy takes only values the configuration had when it loaded,
    catches up within four cycles of the configuration holding still, and
    quiet is 0 in the two cycles after the copy changes and 1 once the copy
    has held still for two and the configuration has equalled it for four.
    Its copies (`quiet_copies`) equal it in every cycle, and each of `runs`
    (flops loaded a cycle early) equals ``quiet & copy.en`` in every cycle."""
    dut = _Settle()
    rng = random.Random(4)

    async def bench(ctx):
        configs, copies, quiets, runs = [], [], [], []
        for cycle in range(600):
            value = (configs[-1] if configs and rng.random() < 0.85
                     else rng.getrandbits(8))
            ctx.set(dut.config.as_value(), value)
            configs.append(value)
            await ctx.tick()
            copies.append(ctx.get(dut.cfg.as_value()))   # after the edge ending `cycle`
            quiets.append(ctx.get(dut.quiet))
            assert [ctx.get(c) for c in dut.copies] == [quiets[-1]] * 2, cycle
            running = quiets[-1] & ctx.get(dut.cfg.en)
            assert [ctx.get(r) for r in dut.runs] == [running] * 2, cycle
            runs.append(running)
            if len(copies) >= 2 and copies[-1] != copies[-2]:
                assert copies[-1] == configs[-1], cycle        # loaded at this edge
            if len(configs) >= 4 and configs[-4:] == [configs[-1]] * 4:
                assert copies[-1] == configs[-1], cycle
            # the copy changed at edge c: quiet is 0 after edges c and c + 1
            for back in (1, 2):
                if len(copies) > back and copies[-back] != copies[-back - 1]:
                    assert quiets[-1] == 0, cycle
            if len(configs) >= 4 and copies[-3:] == [copies[-1]] * 3 and \
                    configs[-4:] == [copies[-1]] * 4:
                assert quiets[-1] == 1, cycle
        assert 0 < sum(quiets) < len(quiets)
        assert 0 < sum(runs) < sum(quiets)

    run_testbenches(dut, bench)


def test_settled_config_runs_need_the_enable():
    with pytest.raises(ValueError, match="run_enable"):
        settled_config(None, Signal(LAYOUT), runs=[Signal()])
