"""AXI4 and AXI4-Lite interfaces as Amaranth signatures.

Each AXI channel is an :class:`amaranth.lib.stream` interface (valid/ready
with a ``data.StructLayout`` payload), so the stream rules and the AXI
handshake rules coincide: a master never makes ``valid`` wait for ``ready``
and holds the payload until the transfer.

Only INCR bursts are used by Tessera (``burst`` is kept so that traffic is
recognisable AXI4 to any checker or bus-functional model).
"""

from __future__ import annotations

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXI4Params", "AXI4Signature", "AXI4LiteSignature", "BURST_INCR", "RESP_OKAY",
           "RESP_SLVERR", "RESP_DECERR"]

BURST_FIXED, BURST_INCR, BURST_WRAP = 0, 1, 2
RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0, 1, 2, 3


class AXI4Params:
    """Widths of an AXI4 port."""

    def __init__(self, *, addr_width: int = 32, data_width: int = 128, id_width: int = 4):
        if data_width not in (32, 64, 128, 256, 512, 1024):
            raise ValueError(f"AXI4 data_width must be a power of two from 32 to 1024, "
                             f"got {data_width}")
        if not 12 <= addr_width <= 64:
            raise ValueError(f"AXI4 addr_width must be 12..64, got {addr_width}")
        if not 1 <= id_width <= 16:
            raise ValueError(f"AXI4 id_width must be 1..16, got {id_width}")
        self.addr_width = addr_width
        self.data_width = data_width
        self.id_width = id_width

    @property
    def bytes_per_beat(self) -> int:
        return self.data_width // 8

    @property
    def size(self) -> int:
        """AxSIZE for full-width beats."""
        return (self.bytes_per_beat).bit_length() - 1

    def addr_layout(self) -> data.StructLayout:
        return data.StructLayout({"addr": self.addr_width, "len": 8, "size": 3, "burst": 2,
                                  "id": self.id_width})

    def r_layout(self) -> data.StructLayout:
        return data.StructLayout({"data": self.data_width, "resp": 2, "last": 1,
                                  "id": self.id_width})

    def w_layout(self) -> data.StructLayout:
        return data.StructLayout({"data": self.data_width, "strb": self.bytes_per_beat,
                                  "last": 1})

    def b_layout(self) -> data.StructLayout:
        return data.StructLayout({"resp": 2, "id": self.id_width})

    def __eq__(self, other):
        return isinstance(other, AXI4Params) and vars(self) == vars(other)

    def __repr__(self):
        return (f"AXI4Params(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width})")


class AXI4Signature(wiring.Signature):
    """An AXI4 port, from the master's point of view."""

    def __init__(self, params: AXI4Params):
        self.params = params
        super().__init__({
            "ar": Out(stream.Signature(params.addr_layout())),
            "r": In(stream.Signature(params.r_layout())),
            "aw": Out(stream.Signature(params.addr_layout())),
            "w": Out(stream.Signature(params.w_layout())),
            "b": In(stream.Signature(params.b_layout())),
        })

    def __eq__(self, other):
        return isinstance(other, AXI4Signature) and self.params == other.params

    def __repr__(self):
        return f"AXI4Signature({self.params!r})"


class AXI4LiteSignature(wiring.Signature):
    """An AXI4-Lite port (32-bit data), from the master's point of view."""

    def __init__(self, *, addr_width: int = 16):
        self.addr_width = addr_width
        addr = data.StructLayout({"addr": addr_width, "prot": 3})
        super().__init__({
            "ar": Out(stream.Signature(addr)),
            "r": In(stream.Signature(data.StructLayout({"data": 32, "resp": 2}))),
            "aw": Out(stream.Signature(addr)),
            "w": Out(stream.Signature(data.StructLayout({"data": 32, "strb": 4}))),
            "b": In(stream.Signature(data.StructLayout({"resp": 2}))),
        })

    def __eq__(self, other):
        return isinstance(other, AXI4LiteSignature) and self.addr_width == other.addr_width

    def __repr__(self):
        return f"AXI4LiteSignature(addr_width={self.addr_width})"
