"""Traffic generator and checker for link-level tests and the route demo.

Both compute the same deterministic sequence in hardware, so a simulation
streams thousands of words with no Python per cycle: word ``i``, lane ``j``
is ``seed + j * LANE_STEP + i * WORD_STEP`` (mod 2**32), ``last`` on the
final word. Either side can be throttled by an LFSR (random gaps at the
generator, random backpressure at the checker) with a configured
probability ``stall / 256`` per cycle.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TrafficGen", "TrafficCheck", "expected_words", "WORD_STEP", "LANE_STEP"]

WORD_STEP = 0x9E3779B1
LANE_STEP = 0x85EBCA6B
MASK32 = 0xFFFF_FFFF


def expected_words(n: int, lanes: int, seed: int) -> list:
    """Golden model of the generated stream: a list of (lanes, last)."""
    return [([(seed + j * LANE_STEP + i * WORD_STEP) & MASK32 for j in range(lanes)], i == n - 1)
            for i in range(n)]


class _Lfsr(Elaboratable):
    """A 16-bit maximal Galois LFSR, advanced every cycle."""

    def __init__(self, seed: int):
        self.seed = (seed & 0xFFFF) or 0xACE1
        self.value = Signal(16, init=self.seed)

    def elaborate(self, platform):
        m = Module()
        v = self.value
        m.d.sync += v.eq(Mux(v[0], (v >> 1) ^ 0xB400, v >> 1))
        return m


class _Sequence(Elaboratable):
    """The per-lane running values of the sequence."""

    def __init__(self, lanes: int):
        self.lanes = lanes
        self.init = Signal()          # load from seed
        self.seed = Signal(32)
        self.advance = Signal()
        self.value = [Signal(32, name=f"lane{j}") for j in range(lanes)]

    def elaborate(self, platform):
        m = Module()
        for j, v in enumerate(self.value):
            with m.If(self.init):
                m.d.sync += v.eq(self.seed + (j * LANE_STEP & MASK32))
            with m.Elif(self.advance):
                m.d.sync += v.eq(v + WORD_STEP)
        return m


class TrafficGen(wiring.Component):
    """Streams ``count`` words of the sequence after a ``start`` pulse."""

    def __init__(self, layout, lanes: int, *, lfsr_seed: int = 0x1D0F):
        self._lanes = lanes
        self._lfsr_seed = lfsr_seed
        super().__init__({
            "o": Out(stream.Signature(layout)),
            "start": In(1),
            "count": In(32),
            "seed": In(32),
            "stall": In(8),
            "sent": Out(32),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = seq = _Sequence(self._lanes)
        m.submodules.lfsr = lfsr = _Lfsr(self._lfsr_seed)
        # Decide about a gap only while no word is offered: once valid is up
        # it stays up until the transfer (stream rule).
        gap = Signal()
        m.d.comb += gap.eq(lfsr.value[:8] < self.stall)
        m.d.comb += [seq.seed.eq(self.seed), seq.init.eq(self.start)]
        for j in range(self._lanes):
            m.d.comb += self.o.payload.data[j].eq(seq.value[j])
        m.d.comb += self.o.payload.last.eq(self.sent == self.count - 1)
        m.d.comb += seq.advance.eq(self.o.valid & self.o.ready)
        with m.If(self.start):
            m.d.sync += [self.sent.eq(0), self.busy.eq(self.count != 0), self.o.valid.eq(0)]
        with m.Elif(self.busy):
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += self.sent.eq(self.sent + 1)
                with m.If(self.sent == self.count - 1):
                    m.d.sync += [self.busy.eq(0), self.o.valid.eq(0)]
                with m.Else():
                    m.d.sync += self.o.valid.eq(~gap)
            with m.Elif(~self.o.valid):
                m.d.sync += self.o.valid.eq(~gap)
        return m


class TrafficCheck(wiring.Component):
    """Accepts words, compares them with the sequence, counts mismatches and
    records the cycle (of the free-running ``cycle`` input) of the first and
    last word."""

    def __init__(self, layout, lanes: int, *, lfsr_seed: int = 0xB5AD):
        self._lanes = lanes
        self._lfsr_seed = lfsr_seed
        super().__init__({
            "i": In(stream.Signature(layout)),
            "start": In(1),
            "count": In(32),
            "seed": In(32),
            "stall": In(8),
            "cycle": In(32),
            "received": Out(32),
            "mismatches": Out(32),
            "first_cycle": Out(32),
            "last_cycle": Out(32),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = seq = _Sequence(self._lanes)
        m.submodules.lfsr = lfsr = _Lfsr(self._lfsr_seed)
        m.d.comb += [seq.seed.eq(self.seed), seq.init.eq(self.start)]
        m.d.comb += self.i.ready.eq(~self.start & (lfsr.value[:8] >= self.stall))
        take = self.i.valid & self.i.ready
        m.d.comb += seq.advance.eq(take)

        wrong = Signal()
        data = self.i.payload.data
        lanes_wrong = [data[j] != seq.value[j] for j in range(self._lanes)]
        last_wrong = self.i.payload.last != (self.received == self.count - 1)
        m.d.comb += wrong.eq(Cat(*lanes_wrong, last_wrong).any())

        with m.If(self.start):
            m.d.sync += [self.received.eq(0), self.mismatches.eq(0), self.done.eq(self.count == 0),
                         self.first_cycle.eq(0), self.last_cycle.eq(0)]
        with m.Elif(take):
            m.d.sync += [self.received.eq(self.received + 1), self.last_cycle.eq(self.cycle)]
            with m.If(self.received == 0):
                m.d.sync += self.first_cycle.eq(self.cycle)
            with m.If(wrong):
                m.d.sync += self.mismatches.eq(self.mismatches + 1)
            with m.If(self.received + 1 >= self.count):
                m.d.sync += self.done.eq(1)
        return m
