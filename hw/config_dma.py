"""Config DMA: fetches a bitstream from DRAM over AXI4 and streams its beats,
``last`` on the final one, into the :class:`~.loader.ConfigLoader`.

The loader accepts a beat every cycle, so read data needs no buffer: the DMA
issues INCR bursts (up to 16 beats, never across a 4 KiB boundary) as fast as
the DRAM accepts them, keeping as many in flight as the DRAM allows, and the
load runs at the DRAM's bandwidth after one read latency.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import BURST_INCR, AXI4Params, AXI4Signature
from .links import Hop
from .loader import config_beat_layout

__all__ = ["ConfigDMA", "MAX_BURST"]

MAX_BURST = 16


class ConfigDMA(wiring.Component):
    def __init__(self, axi_params: AXI4Params, beat_words: int):
        if axi_params.data_width != 32 * beat_words:
            raise ValueError(f"ConfigDMA: AXI data width {axi_params.data_width} must equal the "
                             f"config beat ({beat_words} words)")
        self.axi_params = axi_params
        self.beat_words = beat_words
        super().__init__({
            "axi": Out(AXI4Signature(axi_params)),
            "o": Out(stream.Signature(config_beat_layout(beat_words))),
            "start": In(1),
            "addr": In(32),          # byte address, beat-aligned (low bits ignored)
            "length": In(24),        # beats
            "busy": Out(1),
            "read_bytes": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.axi_params
        shift = p.size                                  # log2(bytes per beat)
        beats_per_4k = 4096 >> shift

        next_beat = Signal(32 - shift)                 # beat address of the next burst
        to_issue = Signal(24)                          # beats not yet requested
        to_receive = Signal(24)                        # beats not yet received

        # burst length: min(16, to_issue, beats left in this 4 KiB page)
        page_left = Signal(range(beats_per_4k + 1))
        m.d.comb += page_left.eq(beats_per_4k - next_beat[:(beats_per_4k - 1).bit_length()])
        in_page = Signal(range(MAX_BURST + 1))
        burst = Signal(range(MAX_BURST + 1))
        m.d.comb += [
            in_page.eq(Mux(page_left < MAX_BURST, page_left, MAX_BURST)),
            burst.eq(Mux(to_issue < in_page, to_issue, in_page)),
        ]

        ar = self.axi.ar
        with m.If(self.start):
            m.d.sync += [next_beat.eq(self.addr >> shift), to_issue.eq(self.length),
                         to_receive.eq(self.length), self.busy.eq(self.length != 0),
                         ar.valid.eq(0)]
        with m.Else():
            with m.If(ar.valid & ar.ready):
                m.d.sync += ar.valid.eq(0)
            # Present the next request once the previous one was taken; the
            # payload is registered and held while valid (stream rule).
            with m.If((~ar.valid | ar.ready) & (to_issue != 0)):
                m.d.sync += [
                    ar.valid.eq(1),
                    ar.payload.addr.eq(next_beat << shift),
                    ar.payload.len.eq(burst - 1),
                    ar.payload.size.eq(p.size),
                    ar.payload.burst.eq(BURST_INCR),
                    ar.payload.id.eq(0),
                    next_beat.eq(next_beat + burst),
                    to_issue.eq(to_issue - burst),
                ]

        # Read data straight to the loader through one registered hop.
        m.submodules.hop = hop = Hop(config_beat_layout(self.beat_words))
        r = self.axi.r
        m.d.comb += [
            hop.i.valid.eq(r.valid & self.busy),
            hop.i.payload.data.as_value().eq(r.payload.data),
            hop.i.payload.last.eq(to_receive == 1),
            r.ready.eq(hop.i.ready & self.busy),
        ]
        with m.If(r.valid & r.ready):
            m.d.sync += [to_receive.eq(to_receive - 1),
                         self.read_bytes.eq(self.read_bytes + p.bytes_per_beat)]
            with m.If(to_receive == 1):
                m.d.sync += self.busy.eq(0)
        wiring.connect(m, hop.o, wiring.flipped(self.o))

        # The DMA never writes.
        m.d.comb += [self.axi.aw.valid.eq(0), self.axi.w.valid.eq(0), self.axi.b.ready.eq(1)]
        return m
