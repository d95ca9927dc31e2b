"""Host CSR block: an AXI4-Lite slave over a register map that is data.

The map is a list of :class:`Reg` (name, word offset, access). For every
register the component has a member named after it:

* ``rw``  -- Out(32): the value the host last wrote (reset 0);
* ``ro``  -- In(32): read-only, driven by the design (status, counters);
* ``pulse`` -- Out(1): one-cycle strobe per written 1 bit 0 (commands), and
  the written word on ``<name>_data`` for multi-bit commands.

Reads and writes to an address outside the map answer SLVERR. One read and
one write are handled at a time; each response is registered (so the
handshake rules hold under any ready/valid stalls).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import RESP_OKAY, RESP_SLVERR, AXI4LiteSignature

__all__ = ["Reg", "CSRBlock"]


@dataclass(frozen=True)
class Reg:
    name: str
    offset: int          # byte offset, 4-aligned
    access: str          # "rw", "ro" or "pulse"
    doc: str = ""

    def __post_init__(self):
        if self.access not in ("rw", "ro", "pulse"):
            raise ValueError(f"register {self.name}: access must be rw, ro or pulse, "
                             f"not {self.access!r}")
        if self.offset % 4:
            raise ValueError(f"register {self.name}: offset {self.offset:#x} is not 4-aligned")


class CSRBlock(wiring.Component):
    def __init__(self, registers: list, *, addr_width: int = 16):
        names = set()
        offsets = set()
        for r in registers:
            if not isinstance(r, Reg):
                raise TypeError(f"registers must be Reg objects, not {r!r}")
            if r.name in names or r.offset in offsets:
                raise ValueError(f"register {r.name} at {r.offset:#x} duplicates a name or offset")
            if r.offset >= (1 << addr_width):
                raise ValueError(f"register {r.name} offset {r.offset:#x} exceeds the "
                                 f"{addr_width}-bit address space")
            names.add(r.name)
            offsets.add(r.offset)
        self.registers = list(registers)
        members = {"bus": In(AXI4LiteSignature(addr_width=addr_width))}
        for r in registers:
            if r.access == "rw":
                members[r.name] = Out(32)
            elif r.access == "ro":
                members[r.name] = In(32)
            else:
                members[r.name] = Out(1)
                members[f"{r.name}_data"] = Out(32)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        for r in self.registers:
            if r.access == "pulse":
                m.d.sync += getattr(self, r.name).eq(0)

        # -- writes: take AW and W together, answer on B --------------------------
        b_pending = Signal()
        m.d.comb += [bus.b.valid.eq(b_pending)]
        m.d.comb += [
            bus.aw.ready.eq(bus.w.valid & ~b_pending),
            bus.w.ready.eq(bus.aw.valid & ~b_pending),
        ]
        with m.If(bus.b.valid & bus.b.ready):
            m.d.sync += b_pending.eq(0)
        with m.If(bus.aw.valid & bus.w.valid & ~b_pending):
            m.d.sync += [b_pending.eq(1), bus.b.payload.resp.eq(RESP_SLVERR)]
            word = bus.w.payload.data
            with m.Switch(bus.aw.payload.addr[2:]):
                for r in self.registers:
                    if r.access == "ro":
                        continue
                    with m.Case(r.offset >> 2):
                        m.d.sync += bus.b.payload.resp.eq(RESP_OKAY)
                        if r.access == "rw":
                            for i in range(4):
                                with m.If(bus.w.payload.strb[i]):
                                    m.d.sync += getattr(self, r.name)[8 * i:8 * i + 8].eq(
                                        word[8 * i:8 * i + 8])
                        else:
                            m.d.sync += [getattr(self, r.name).eq(word[0]),
                                         getattr(self, f"{r.name}_data").eq(word)]

        # -- reads: take AR, answer on R ------------------------------------------
        r_pending = Signal()
        m.d.comb += [bus.r.valid.eq(r_pending), bus.ar.ready.eq(~r_pending)]
        with m.If(bus.r.valid & bus.r.ready):
            m.d.sync += r_pending.eq(0)
        with m.If(bus.ar.valid & ~r_pending):
            m.d.sync += [r_pending.eq(1), bus.r.payload.resp.eq(RESP_SLVERR),
                         bus.r.payload.data.eq(0)]
            with m.Switch(bus.ar.payload.addr[2:]):
                for r in self.registers:
                    with m.Case(r.offset >> 2):
                        value = getattr(self, r.name if r.access != "pulse" else f"{r.name}_data")
                        m.d.sync += [bus.r.payload.resp.eq(RESP_OKAY),
                                     bus.r.payload.data.eq(value)]
        return m
