"""Configuration plumbing: the config bus, the per-unit shadow/active config
register, and the constants of the bitstream format (shared with the
compiler's encoder and decoder, so there is one truth).

Bitstream format (32-bit little-endian words)::

    word 0      MAGIC                   "TSRA"
    word 1      FORMAT_VERSION
    word 2      FabricParams.hash32
    word 3      payload length in words (must equal the fabric's config size)
    word 4..    payload: every config unit's words, in unit index order
    last word   CRC-32 (zlib / ISO-HDLC) over header and payload bytes

Each config unit (switch or unit slot) owns ``words`` consecutive payload
words starting at its ``base``; its configuration is a ``data.StructLayout``
packed LSB first into those words (padding bits are zero).
"""

from __future__ import annotations

import enum

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MAGIC", "FORMAT_VERSION", "HEADER_WORDS", "CONFIG_WORD", "LoadError",
           "ConfigBusSignature", "ConfigRegister", "config_words"]

MAGIC = 0x41525354          # b"TSRA" read as a little-endian word
FORMAT_VERSION = 1
HEADER_WORDS = 4
CONFIG_WORD = 32
ADDR_WIDTH = 20             # payload word address on the config bus


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


class ConfigBusSignature(wiring.Signature):
    """The config bus, driven by the loader and listened to by every unit.

    ``write`` stores ``data`` into the shadow word at payload address ``addr``;
    ``commit`` copies every shadow configuration into the active one in the
    same cycle (the loader pulses it only after a bitstream is accepted).
    """

    def __init__(self):
        super().__init__({
            "write": Out(1),
            "addr": Out(ADDR_WIDTH),
            "data": Out(CONFIG_WORD),
            "commit": Out(1),
        })


class ConfigRegister(wiring.Component):
    """Shadow and active configuration of one config unit.

    The shadow is written word by word over the config bus while the fabric
    keeps running on the active configuration; ``commit`` switches it in. A
    rejected bitstream never commits, so the active configuration (what the
    unit acts on) is untouched.
    """

    def __init__(self, layout, *, base: int):
        if not isinstance(base, int) or base < 0:
            raise ValueError(f"ConfigRegister base must be a non-negative int, got {base!r}")
        self._layout = layout
        self.base = base
        self.words = config_words(layout)
        super().__init__({
            "bus": In(ConfigBusSignature()),
            "active": Out(layout),
        })

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._layout).width
        shadow = [Signal(CONFIG_WORD, name=f"shadow{k}") for k in range(self.words)]
        offset = Signal(ADDR_WIDTH + 1)
        m.d.comb += offset.eq(self.bus.addr - self.base)
        with m.If(self.bus.write):
            with m.Switch(offset):
                for k in range(self.words):
                    with m.Case(k):
                        m.d.sync += shadow[k].eq(self.bus.data)
        with m.If(self.bus.commit):
            m.d.sync += self.active.as_value().eq(Cat(*shadow)[:width])
        return m
