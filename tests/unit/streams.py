"""Stream test helpers for Amaranth's simulator: a producer and a consumer
testbench with random gaps and random backpressure, which also check the
stream rules (valid is never withdrawn and the payload holds until the
transfer)."""

from __future__ import annotations

import random


async def produce(ctx, port, items, *, rng: random.Random, idle: float = 0.3):
    """Send `items` (payload values) on `port`; random idle cycles between words."""
    for item in items:
        while rng.random() < idle:
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, item)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)


async def consume(ctx, port, count, *, rng: random.Random, stall: float = 0.3,
                  timeout: int = 100_000, cycles: list | None = None):
    """Receive `count` words from `port` with random backpressure; assert
    that valid, once up, stays up with a stable payload until taken."""
    got = []
    held = None
    for cycle in range(timeout):
        ready = rng.random() >= stall
        ctx.set(port.ready, ready)
        valid = ctx.get(port.valid)
        payload = ctx.get(port.payload)
        bits = payload.as_bits() if hasattr(payload, "as_bits") else int(payload)
        if held is not None:
            assert valid, f"valid withdrawn before transfer at cycle {cycle}"
            assert bits == held, f"payload changed before transfer at cycle {cycle}"
        if valid and ready:
            got.append(bits)
            if cycles is not None:
                cycles.append(cycle)
            held = None
        elif valid:
            held = bits
        await ctx.tick()
        if len(got) == count:
            ctx.set(port.ready, 0)
            return got
    raise AssertionError(f"timeout: received {len(got)} of {count} words")


def run_testbenches(dut, *benches, processes=(), period: float = 1e-8):
    """Run `dut` in Amaranth's simulator with one clock of `period` seconds,
    the async testbenches `benches` and the processes `processes` (watchers
    that must not change the design's inputs), until every testbench returns."""
    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(period)
    for p in processes:
        sim.add_process(p)
    for b in benches:
        sim.add_testbench(b)
    sim.run()
