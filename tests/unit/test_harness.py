"""The stream harness itself, on a Hop and a multicast Crossbar, on pysim and
Verilator: same stimulus, same result, and a broken DUT is caught."""

import random

import pytest
from amaranth import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import Out

from tessera.hw.links import Hop
from tessera.hw.switch import Crossbar, select_layout
from tessera.sim.harness import StreamRuleError, run_streams

LAYOUT = data.StructLayout({"data": 16, "last": 1})


@pytest.mark.parametrize("sim", ["pysim", "verilator"])
def test_hop_through_harness(need_sim, sim):
    need_sim(sim)
    rng = random.Random(3)
    items = [rng.getrandbits(17) for _ in range(200)]
    res = run_streams(lambda: Hop(LAYOUT), sim=sim, key="hop16", inputs={"i": items},
                      expect={"o": len(items)}, in_gap=0.3, out_stall=0.4, seed=5)
    assert not res.timed_out
    assert res.outputs["o"] == items


@pytest.mark.parametrize("sim", ["pysim", "verilator"])
def test_crossbar_multicast_through_harness(need_sim, sim):
    need_sim(sim)
    cfg_layout = data.ArrayLayout(select_layout(3), 2)
    config = cfg_layout.const([{"en": 1, "sel": 2}, {"en": 1, "sel": 2}]).as_bits()
    items = list(range(100))
    res = run_streams(lambda: Crossbar(LAYOUT, 3, 2), sim=sim, key="xbar16-3x2",
                      static={"config": config}, inputs={"i[2]": items},
                      expect={"o[0]": 100, "o[1]": 100}, in_gap=0.2, out_stall=0.5, seed=9)
    assert res.outputs == {"o[0]": items, "o[1]": items}
    assert res.consumed["i[2]"] == 100


class _Withdraws(wiring.Component):
    """A broken source: drops valid after one cycle whether taken or not."""
    o: Out(stream.Signature(LAYOUT))

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.o.valid.eq(~self.o.valid)
        return m


def test_harness_catches_withdrawn_valid():
    with pytest.raises(StreamRuleError, match="valid withdrawn"):
        run_streams(_Withdraws, expect={"o": 10}, out_stall=0.9, seed=1)
