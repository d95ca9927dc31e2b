"""Simulation tops.

:class:`SimTop` is the fabric as a testbench sees it: a boot memory that the
testbench preloads through a backdoor (no Python per word on the bus), a
reader that streams a bitstream from it into the :class:`~.loader.ConfigLoader`,
the :class:`~.fabric.Fabric`, and a traffic generator and checker that can be
attached to any vector edge port. A testbench writes a few control signals,
pulses a start and waits for a done: no Python runs per clock cycle.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .fabric import Fabric, load_done_flag
from .links import vector_layout
from .loader import ConfigLoader, config_beat_layout
from .params import FabricParams
from .traffic import TrafficCheck, TrafficGen

__all__ = ["BootReader", "SimTop"]


class BootReader(wiring.Component):
    """Streams ``length`` beats from a memory read port, ``last`` on the final one.

    The memory has a one-cycle synchronous read; a two-entry output buffer
    keeps one beat per cycle while honouring backpressure.
    """

    def __init__(self, depth: int, beat_words: int):
        self._depth = depth
        self._layout = config_beat_layout(beat_words)
        super().__init__({
            "o": Out(stream.Signature(self._layout)),
            "start": In(1),
            "length": In(range(depth + 1)),
            "busy": Out(1),
            "rd_addr": Out(range(depth)),
            "rd_data": In(32 * beat_words),
        })

    def elaborate(self, platform):
        m = Module()
        addr = Signal(range(self._depth + 1))
        in_flight = Signal()          # a read issued last cycle, data now on rd_data
        in_flight_last = Signal()
        # output buffer: 2 entries
        buf = [Signal(self._layout, name=f"buf{k}") for k in range(2)]
        count = Signal(range(3))
        pop = self.o.valid & self.o.ready
        # Issue a read only if the word can land: count after this cycle's pop
        # plus words in flight must stay <= 2.
        space = Signal(range(4))
        m.d.comb += space.eq(2 - count + pop - in_flight)
        issue = Signal()
        m.d.comb += [
            issue.eq(self.busy & (addr < self.length) & (space > 0)),
            self.rd_addr.eq(addr),
            self.o.valid.eq(count != 0),
            self.o.payload.eq(buf[0]),
        ]
        with m.If(self.start):
            m.d.sync += [addr.eq(0), self.busy.eq(self.length != 0), in_flight.eq(0), count.eq(0)]
        with m.Else():
            m.d.sync += [in_flight.eq(issue), in_flight_last.eq(addr == self.length - 1)]
            with m.If(issue):
                m.d.sync += addr.eq(addr + 1)
            landing = Signal(self._layout)
            m.d.comb += [landing.data.as_value().eq(self.rd_data), landing.last.eq(in_flight_last)]
            with m.If(in_flight & ~pop):
                m.d.sync += count.eq(count + 1)
                with m.If(count == 0):
                    m.d.sync += buf[0].eq(landing)
                with m.Else():
                    m.d.sync += buf[1].eq(landing)
            with m.Elif(pop & ~in_flight):
                m.d.sync += [count.eq(count - 1), buf[0].eq(buf[1])]
            with m.Elif(pop & in_flight):
                with m.If(count == 1):
                    m.d.sync += buf[0].eq(landing)
                with m.Else():
                    m.d.sync += [buf[0].eq(buf[1]), buf[1].eq(landing)]
            with m.If(pop & self.o.payload.last):
                m.d.sync += self.busy.eq(0)
        return m


class SimTop(wiring.Component):
    """Boot memory + config loader + fabric + traffic generator/checker."""

    def __init__(self, params: FabricParams, *, boot_depth: int | None = None):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params
        self.fabric = Fabric(params)
        self.boot_depth = boot_depth or self.default_boot_depth(params)
        self.boot = memory.Memory(shape=32 * params.config_beat_words, depth=self.boot_depth,
                                  init=[])
        super().__init__(self.members())

    @staticmethod
    def default_boot_depth(params: FabricParams) -> int:
        """Beats of boot memory: room for a bitstream plus slack for
        over-long or foreign files (at least 4096 beats, a power of two)."""
        from .config import BitstreamFormat
        return max(4096, 1 << (2 * BitstreamFormat.for_params(params).total_beats).bit_length())

    @staticmethod
    def members() -> dict:
        """The control/status signature (the same for every preset)."""
        return {
            "boot_len": In(16), "load_start": In(1),
            "run_start": In(1), "run_words": In(32), "run_seed": In(32),
            "run_src": In(16), "run_dst": In(16), "gen_stall": In(8), "chk_stall": In(8),
            "cycle": Out(32), "load_busy": Out(1), "load_done": Out(1), "load_error": Out(4),
            "load_cycles": Out(32), "loaded": Out(1), "commits": Out(16),
            "run_done": Out(1), "run_sent": Out(32), "run_received": Out(32),
            "run_mismatches": Out(32), "run_first": Out(32), "run_last": Out(32),
            "run_cycles": Out(32),
        }

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.fabric = fabric = self.fabric
        m.submodules.boot = self.boot
        m.submodules.reader = reader = BootReader(self.boot_depth, p.config_beat_words)
        m.submodules.loader = loader = ConfigLoader(p)

        m.d.sync += self.cycle.eq(self.cycle + 1)

        rd = self.boot.read_port()
        m.d.comb += [rd.addr.eq(reader.rd_addr), reader.rd_data.eq(rd.data),
                     reader.start.eq(self.load_start), reader.length.eq(self.boot_len)]
        wiring.connect(m, reader.o, loader.i)
        wiring.connect(m, loader.cfg, fabric.cfg)
        load_done, _ = load_done_flag(m, self.load_start, loader.ended)
        m.d.comb += [self.load_done.eq(load_done), self.load_busy.eq(loader.busy | reader.busy),
                     self.load_error.eq(loader.error), self.load_cycles.eq(loader.cycles),
                     self.loaded.eq(loader.loaded), self.commits.eq(loader.commits)]

        layout = vector_layout(p)
        m.submodules.gen = gen = TrafficGen(layout, p.lanes)
        m.submodules.chk = chk = TrafficCheck(layout, p.lanes)
        for blk in (gen, chk):
            m.d.comb += [blk.start.eq(self.run_start), blk.count.eq(self.run_words),
                         blk.seed.eq(self.run_seed)]
        m.d.comb += [gen.stall.eq(self.gen_stall), chk.stall.eq(self.chk_stall),
                     chk.cycle.eq(self.cycle)]

        # Attach the generator to edge input run_src and the checker to edge
        # output run_dst; every other edge input is idle, every other edge
        # output is held (ready low) so that a misrouted word is not lost.
        for i, port in enumerate(fabric.edge_in_vec):
            sel = self.run_src == i
            m.d.comb += [port.valid.eq(sel & gen.o.valid), port.payload.eq(gen.o.payload)]
            with m.If(sel):
                m.d.comb += gen.o.ready.eq(port.ready)
        for i, port in enumerate(fabric.edge_out_vec):
            sel = self.run_dst == i
            with m.If(sel):
                m.d.comb += [chk.i.valid.eq(port.valid), chk.i.payload.eq(port.payload),
                             port.ready.eq(chk.i.ready)]

        running = Signal()
        with m.If(self.run_start):
            m.d.sync += [running.eq(1), self.run_cycles.eq(0)]
        with m.Elif(running & ~chk.done):
            m.d.sync += self.run_cycles.eq(self.run_cycles + 1)
        m.d.comb += [self.run_done.eq(chk.done & ~self.run_start), self.run_sent.eq(gen.sent),
                     self.run_received.eq(chk.received), self.run_mismatches.eq(chk.mismatches),
                     self.run_first.eq(chk.first_cycle), self.run_last.eq(chk.last_cycle)]
        return m
