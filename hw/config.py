"""Configuration plumbing: the config bus, the per-unit shadow/active config
register, and the constants of the bitstream format (shared with the
compiler's encoder and decoder, so there is one truth).

Bitstream format: 32-bit little-endian words, grouped in *beats* of
``B = FabricParams.config_beat_words`` words (the width of the memory path:
16 bytes per cycle gives B = 4). Each section is zero-padded to whole beats::

    header beats   word 0 MAGIC "TSRA", word 1 FORMAT_VERSION,
                   word 2 FabricParams.hash32,
                   word 3 payload length L in words (= the fabric's config size)
    payload beats  every config unit's words, in unit index order (L words)
    CRC beat       word 0: CRC-32 (zlib / ISO-HDLC) over all header and payload
                   beats, padding included

Each config unit (switch or unit slot) owns ``words`` consecutive payload
words starting at its ``base``; its configuration is a ``data.StructLayout``
packed LSB first into those words (padding bits are zero). The loader takes
one beat per cycle.
"""

from __future__ import annotations

import enum

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MAGIC", "FORMAT_VERSION", "HEADER_WORDS", "CONFIG_WORD", "CONFIG_BUS_STAGES",
           "LoadError", "ConfigBusSignature", "ConfigRegister", "config_words", "BitstreamFormat"]

MAGIC = 0x41525354          # b"TSRA" read as a little-endian word
FORMAT_VERSION = 2
HEADER_WORDS = 4
CONFIG_WORD = 32
ADDR_WIDTH = 20             # payload word address on the config bus
#: Register stages of the config bus inside each ConfigRegister (its local copy).
CONFIG_BUS_STAGES = 1


class LoadError(enum.IntEnum):
    """Codes in the loader's status register (0 means the load was accepted)."""
    OK = 0
    BAD_MAGIC = 1
    BAD_VERSION = 2
    BAD_PARAMS_HASH = 3
    BAD_LENGTH = 4          # header length differs from the fabric's config size
    BAD_CRC = 5
    TRUNCATED = 6           # the stream ended before the CRC word
    OVERRUN = 7             # more words followed the CRC word


def config_words(layout) -> int:
    """Number of 32-bit config words a layout occupies."""
    width = Shape.cast(layout).width
    return max(1, -(-width // CONFIG_WORD))


class BitstreamFormat:
    """Where everything sits in a bitstream for given beat width and payload
    size: the one description the loader, encoder and decoder share."""

    def __init__(self, beat_words: int, payload_words: int):
        if beat_words < 1 or beat_words & (beat_words - 1):
            raise ValueError(f"beat_words must be a power of two, got {beat_words}")
        self.beat_words = beat_words
        self.payload_words = payload_words
        self.header_beats = -(-HEADER_WORDS // beat_words)
        self.payload_beats = -(-payload_words // beat_words)
        self.crc_beat = self.header_beats + self.payload_beats
        self.total_beats = self.crc_beat + 1

    @classmethod
    def for_params(cls, params) -> "BitstreamFormat":
        from .topology import Topology
        return cls(params.config_beat_words, Topology(params).payload_words)


class ConfigBusSignature(wiring.Signature):
    """The config bus, driven by the loader and listened to by every unit.

    ``write`` stores the ``beat_words`` words of ``data`` into the shadow
    words at payload beat ``addr`` (payload words ``addr * beat_words ...``);
    ``commit`` copies every shadow configuration into the active one in the
    same cycle (the loader pulses it only after a bitstream is accepted).
    """

    def __init__(self, beat_words: int):
        self.beat_words = beat_words
        super().__init__({
            "write": Out(1),
            "addr": Out(ADDR_WIDTH),
            "data": Out(data.ArrayLayout(CONFIG_WORD, beat_words)),
            "commit": Out(1),
        })

    def __eq__(self, other):
        return isinstance(other, ConfigBusSignature) and self.beat_words == other.beat_words

    def __repr__(self):
        return f"ConfigBusSignature({self.beat_words})"


class ConfigRegister(wiring.Component):
    """Shadow and active configuration of one config unit.

    The shadow is written word by word over the config bus while the fabric
    keeps running on the active configuration; ``commit`` switches it in. A
    rejected bitstream never commits, so the active configuration (what the
    unit acts on) is untouched. The bus is registered on the way in, so a
    write or commit takes effect two cycles after the loader drives it.
    """

    def __init__(self, layout, *, base: int, beat_words: int):
        if not isinstance(base, int) or base < 0:
            raise ValueError(f"ConfigRegister base must be a non-negative int, got {base!r}")
        self._layout = layout
        self.base = base
        self.words = config_words(layout)
        self.beat_words = beat_words
        super().__init__({
            "bus": In(ConfigBusSignature(beat_words)),
            "active": Out(layout),
        })

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._layout).width
        # A local copy of the bus, one register stage: the loader's bus then
        # fans out to one register per config unit instead of to every
        # configuration word and (commit) every active bit of the fabric.
        # Broadcast unregistered, it was a routing hot spot across the die
        # (docs/area.md: with it registered, small with pass-through PCUs
        # routes). Writes and commit both arrive one cycle later, in order.
        write, addr, wdata, commit = (self.bus.write, self.bus.addr, self.bus.data,
                                      self.bus.commit)
        for k in range(CONFIG_BUS_STAGES):
            sfx = f"_d{k}" if k else ""
            regs = (Signal(name=f"bus_write{sfx}"), Signal.like(addr, name=f"bus_addr{sfx}"),
                    Signal.like(wdata, name=f"bus_data{sfx}"), Signal(name=f"bus_commit{sfx}"))
            m.d.sync += [r.eq(v) for r, v in zip(regs, (write, addr, wdata, commit))]
            write, addr, wdata, commit = regs
        shadow = [Signal(CONFIG_WORD, name=f"shadow{k}") for k in range(self.words)]
        for k, word in enumerate(shadow):
            beat, lane = divmod(self.base + k, self.beat_words)
            with m.If(write & (addr == beat)):
                m.d.sync += word.eq(wdata[lane])
        with m.If(commit):
            m.d.sync += self.active.as_value().eq(Cat(*shadow)[:width])
        return m
