"""The special functions: the golden model's accuracy against float64 (the
full measurement is scripts/bench_sfu.py), and the RTL (SFULane on pysim, the
PCU's tail on Verilator) bit-exact against the model."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from tessera.hw.pcu import PCU
from tessera.hw.sfu import SATURATED, SFU_EXP2, SFU_LATENCY, SFU_NONE, SFU_RECIP, SFULane
from tessera.sim.harness import run_streams
from tessera.sim.pcu_model import PCUModel, exp2_fixed, recip_fixed

from .test_pcu import FULL

MASK = 0xFFFF_FFFF


def test_exp2_accuracy():
    """<= 2e-3 absolute (relative to 1.0) for x <= 0, exhaustive over
    [-18, 0] in Q15.16 and random below."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.arange(-18 << 16, 1), rng.integers(-2 ** 31, 1, 200_000)])
    for f in (14, 16):
        err = np.abs(exp2_fixed(x, f) / 2.0 ** f - np.exp2(x / 2.0 ** 16))
        assert err.max() <= 2e-3, (f, err.max())
        assert err.max() <= 3e-4            # what the design achieves (bench: 2.6e-4)


def test_exp2_format_edges():
    one = 1 << 16
    assert exp2_fixed(0, 16) == 1 << 16                      # 2**0 = 1.0
    assert exp2_fixed(-one, 16) == 1 << 15                   # 0.5
    assert exp2_fixed(3 * one, 14) == 8 << 14
    assert exp2_fixed(16 * one, 16) == SATURATED
    assert exp2_fixed(0x8000_0000, 16) == 0                  # most negative input


def test_recip_accuracy():
    rng = np.random.default_rng(1)
    for f in (14, 16, 30):
        k = f + 16
        lo, hi = int(2.0 ** k / 2 ** 31) + 1, min(2 ** 31 - 1, int(2.0 ** k / 2 ** 14))
        a = rng.integers(lo, hi + 1, 200_000)
        exact = 2.0 ** k / a
        rel = np.abs(recip_fixed(a, f) - exact) / exact
        assert rel.max() <= 1e-4, (f, rel.max())
    # every 17-bit mantissa (what the Newton step sees) at one exponent
    a = np.arange(1 << 24, 1 << 25, 97)
    rel = np.abs(recip_fixed(a, 30) - 2.0 ** 46 / a) / (2.0 ** 46 / a)
    assert rel.max() <= 1e-4


def test_recip_format_edges():
    assert recip_fixed(1 << 16, 16) == 1 << 16               # 1/1.0 in Q16.16
    assert recip_fixed(2 << 16, 30) == 1 << 29               # 1/2 in Q2.30
    for bad in (0, -5 & MASK, 0x8000_0000):
        assert recip_fixed(bad, 16) == SATURATED
    assert recip_fixed(1, 16) == SATURATED                   # 2**32 overflows


def _values(rng, n):
    special = [0, 1, 2, 3, MASK, 0x8000_0000, 0x7FFF_FFFF, 1 << 16, 0xFFFF_0000,
               0x7FFF, 0x8000, 0x1_0000 + 1]
    out = list(special)
    while len(out) < n:
        r = rng.random()
        if r < 0.3:
            out.append(rng.getrandbits(32))
        elif r < 0.6:
            out.append(rng.randrange(-(20 << 16), 20 << 16) & MASK)
        else:
            out.append(1 << rng.randrange(31) | rng.getrandbits(rng.randrange(1, 31)))
    return out


def test_sfu_lane_matches_model():
    """Every op and a range of formats, with random enable gaps: r after the
    n-th enable is f(a at enable n - SFU_LATENCY + 1)."""
    rng = random.Random(2)
    dut = SFULane()
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    cases = [(op, shift) for op in (SFU_EXP2, SFU_RECIP) for shift in (0, 8, 14, 16, 30, 31)]
    cases.append((SFU_NONE, 16))
    checked = []

    async def bench(ctx):
        for op, shift in cases:
            ctx.set(dut.op, op)
            ctx.set(dut.shift, shift)
            values = _values(rng, 300)
            fed = []
            while len(fed) < len(values) + SFU_LATENCY:
                en = rng.random() < 0.7
                ctx.set(dut.en, en)
                if en:
                    fed.append(values[len(fed)] if len(fed) < len(values) else 0)
                    ctx.set(dut.a, fed[-1])
                await ctx.tick()
                n = len(fed)
                if en and n >= SFU_LATENCY:
                    a = fed[n - SFU_LATENCY]
                    if op == SFU_EXP2:
                        want = int(exp2_fixed(a, shift))
                    elif op == SFU_RECIP:
                        want = int(recip_fixed(a, shift))
                    else:
                        want = 0
                    got = ctx.get(dut.r)
                    assert got == want, (op, shift, hex(a), got, want)
                    checked.append(a)

    sim.add_testbench(bench)
    sim.run()
    assert len(checked) > 3500


@pytest.mark.parametrize("op,shift", [(SFU_EXP2, 14), (SFU_RECIP, 30), (SFU_RECIP, 16)])
def test_sfu_through_pcu_verilator(need_sim, op, shift):
    """Thousands of values through the PCU's tail on Verilator, bit-exact."""
    need_sim("verilator")
    p = FULL                # "small" has no SFU tail (hw/params.py)
    model = PCUModel(p)
    rng = random.Random(op * 100 + shift)
    vals = _values(rng, 1000 * p.lanes)
    items = [model.pack("vec", vals[i:i + p.lanes]) for i in range(0, len(vals), p.lanes)]
    cfg = {"en": 1, "counters": [{"stop": 1, "stride": 1}], "vec_in": [{"en": 1}],
           "tail": {"op": op, "src": 0, "shift": shift},
           "vec_out": [{"en": 1, "src": p.pcu_regs}]}
    want = model.run(cfg, {"i_vec[0]": items}).outputs["o_vec[0]"]
    res = run_streams(lambda: PCU(p), sim="verilator", key="pcu-small-full",
                      static={"config": PCU.config_layout(p).const(cfg).as_bits()},
                      inputs={"i_vec[0]": items}, expect={"o_vec[0]": len(items)},
                      in_gap=0.2, out_stall=0.2, seed=3)
    assert res.outputs["o_vec[0]"] == want
    f = exp2_fixed if op == SFU_EXP2 else recip_fixed
    flat = [w for item in want for w in model.unpack("vec", item)[0]]
    assert flat == [int(v) for v in f(np.array(vals), shift)]
