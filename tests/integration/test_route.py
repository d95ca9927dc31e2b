"""The route demo end to end on every backend: compile a route, load it
through the RTL config loader, stream words through the switches, check
them in RTL, and measure steady-state throughput."""

import pytest

from tessera.hw.params import preset
from tessera.sim.host import run_route

CASES = [("verilator", "small", 6, 4096), ("icarus", "small", 6, 2048), ("pysim", "tiny", 4, 1024)]


@pytest.mark.parametrize("sim,preset_name,hops,words", CASES, ids=[c[0] for c in CASES])
def test_route_full_rate(need_sim, sim, preset_name, hops, words):
    need_sim(sim)
    r = run_route(preset(preset_name), hops=hops, words=words, sim=sim)
    assert r["ok"], r
    assert r["received"] == words and r["mismatches"] == 0
    assert r["throughput"] >= 0.99, r
    assert r["config_cycles"] == r["bitstream_bytes"] // (4 * preset(preset_name).config_beat_words)


@pytest.mark.parametrize("sim", ["verilator", "pysim"])
@pytest.mark.parametrize("gen_stall,chk_stall", [(0, 128), (96, 64), (200, 200)])
def test_route_under_random_stalls(need_sim, sim, gen_stall, chk_stall):
    """No word lost, duplicated or reordered with random gaps and backpressure."""
    need_sim(sim)
    p = preset("small" if sim == "verilator" else "tiny")
    words = 2000 if sim == "verilator" else 300
    r = run_route(p, hops=5 if sim == "verilator" else 3, words=words, sim=sim,
                  gen_stall=gen_stall, chk_stall=chk_stall, seed=gen_stall + chk_stall)
    assert r["ok"], r
    assert r["throughput"] < 1.0     # the stalls really happened


def test_long_route_through_units(need_sim):
    """A route longer than the grid: it must loop over tracks and units."""
    need_sim("verilator")
    r = run_route(preset("small"), hops=12, words=1000, sim="verilator")
    assert r["ok"] and r["throughput"] >= 0.99, r
