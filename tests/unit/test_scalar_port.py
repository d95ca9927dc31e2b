"""The AGCU's scalar port: vectors in, one lane per word out, in order, under
random gaps and backpressure, at one word per cycle when unthrottled."""

import random

import pytest

from tessera.hw.agcu import ScalarPort
from tessera.hw.links import scalar_layout, vector_layout
from tessera.hw.params import preset

from .streams import consume, produce, run_testbenches


@pytest.mark.parametrize("idle,stall", [(0.3, 0.3), (0.0, 0.0)])
def test_serializes_lanes_in_order(idle, stall):
    p = preset("small")
    dut = ScalarPort(p)
    rng = random.Random(3)
    vl, sl = vector_layout(p), scalar_layout(p)
    vecs = [([rng.getrandbits(32) for _ in range(p.lanes)], rng.random() < 0.3) for _ in range(40)]
    items = [vl.const({"data": d, "last": int(last)}) for d, last in vecs]
    want = []
    for d, last in vecs:
        for j, w in enumerate(d):
            want.append(sl.const({"data": w, "last": int(last and j == p.lanes - 1)}).as_bits())
    got, cycles = [], []

    async def tx(ctx):
        await produce(ctx, dut.i, items, rng=random.Random(1), idle=idle)

    async def rx(ctx):
        got.extend(await consume(ctx, dut.o, len(want), rng=random.Random(2), stall=stall,
                                 cycles=cycles))

    run_testbenches(dut, tx, rx)
    assert got == want
    if idle == stall == 0:
        span = cycles[-1] - cycles[0]
        assert span == len(want) - 1, f"{len(want)} words took {span + 1} cycles"
