"""The config loader: checks a bitstream as it streams in and writes it into
the shadow configurations over the config bus; commits only a good one.

The loader accepts one 32-bit word per cycle. It checks the header (magic,
format version, FabricParams hash, payload length) and a CRC-32 over header
and payload. Payload words go to the shadow registers as they arrive; the
active configuration changes only with the ``commit`` pulse, which is sent
only when the whole bitstream is good. A bad bitstream is drained up to its
``last`` word and leaves an error code (:class:`~.config.LoadError`) in the
status register; the fabric keeps running on its previous configuration.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import crc, data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import (CONFIG_WORD, FORMAT_VERSION, HEADER_WORDS, MAGIC, ConfigBusSignature,
                     LoadError)
from .params import FabricParams
from .topology import Topology

__all__ = ["ConfigLoader", "config_word_layout", "CRC_PARAMETERS"]

#: CRC-32 as in zlib (ISO-HDLC), 32 data bits per step, little-endian words.
CRC_PARAMETERS = crc.catalog.CRC32_ISO_HDLC(data_width=CONFIG_WORD)


def config_word_layout() -> data.StructLayout:
    return data.StructLayout({"data": CONFIG_WORD, "last": 1})


class ConfigLoader(wiring.Component):
    """Bitstream checker and config-bus master.

    Ports:
        i        -- bitstream words (``last`` on the final word)
        cfg      -- the config bus to the fabric
        busy     -- a bitstream is streaming in
        done     -- the most recent bitstream has ended (accepted or not)
        ended    -- one-cycle pulse when a bitstream ends (with its error code)
        error    -- LoadError of the most recent bitstream
        loaded   -- at least one bitstream has been committed
        cycles   -- cycles from the first word of the last bitstream to its end
        commits  -- number of committed bitstreams (wraps)
    """

    def __init__(self, params: FabricParams):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params
        self.payload_words = Topology(params).payload_words
        super().__init__({
            "i": In(stream.Signature(config_word_layout())),
            "cfg": Out(ConfigBusSignature()),
            "busy": Out(1),
            "done": Out(1),
            "ended": Out(1),
            "error": Out(4),
            "loaded": Out(1),
            "cycles": Out(32),
            "commits": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        total = HEADER_WORDS + self.payload_words          # words before the CRC word
        m.submodules.crc = crc_proc = CRC_PARAMETERS.create()

        index = Signal(range(total + 2))    # saturates at total + 1 (past the CRC word)
        err = Signal(4)
        check = Signal(4)                   # error found in the word now arriving
        first = Signal(4)                   # ... or its early end
        word = self.i.payload.data
        take = self.i.valid & self.i.ready
        at_start = ~self.busy

        m.d.comb += [
            self.i.ready.eq(1),
            crc_proc.data.eq(word),
            crc_proc.valid.eq(take & (index < total)),
            crc_proc.start.eq(take & at_start),
        ]

        # Check the word now arriving against what its position calls for.
        with m.If(index == 0):
            m.d.comb += check.eq(Mux(word == MAGIC, LoadError.OK, LoadError.BAD_MAGIC))
        with m.Elif(index == 1):
            m.d.comb += check.eq(Mux(word == FORMAT_VERSION, LoadError.OK, LoadError.BAD_VERSION))
        with m.Elif(index == 2):
            m.d.comb += check.eq(Mux(word == self.params.hash32, LoadError.OK,
                                     LoadError.BAD_PARAMS_HASH))
        with m.Elif(index == 3):
            m.d.comb += check.eq(Mux(word == self.payload_words, LoadError.OK,
                                     LoadError.BAD_LENGTH))
        with m.Elif(index == total):
            m.d.comb += check.eq(Mux(word == crc_proc.crc, LoadError.OK, LoadError.BAD_CRC))
        with m.Elif(index == total + 1):
            m.d.comb += check.eq(LoadError.OVERRUN)
        # An early end is truncation unless the word itself is already wrong.
        m.d.comb += first.eq(Mux(self.i.payload.last & (index < total) & (check == LoadError.OK),
                                 LoadError.TRUNCATED, check))

        err_now = Signal(4)
        m.d.comb += err_now.eq(Mux(err != LoadError.OK, err, first))

        is_payload = (index >= HEADER_WORDS) & (index < total)
        m.d.sync += [
            self.cfg.write.eq(take & is_payload & (err_now == LoadError.OK)),
            self.cfg.addr.eq(index - HEADER_WORDS),
            self.cfg.data.eq(word),
            self.cfg.commit.eq(0),
        ]

        m.d.sync += self.ended.eq(take & self.i.payload.last)
        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        with m.If(take):
            with m.If(at_start):
                m.d.sync += [self.busy.eq(1), self.done.eq(0), self.cycles.eq(1)]
            with m.If(index < total + 1):
                m.d.sync += index.eq(index + 1)
            m.d.sync += err.eq(err_now)
            with m.If(self.i.payload.last):
                m.d.sync += [
                    self.busy.eq(0),
                    self.done.eq(1),
                    self.error.eq(err_now),
                    index.eq(0),
                    err.eq(LoadError.OK),
                ]
                with m.If(err_now == LoadError.OK):
                    m.d.sync += [
                        self.cfg.commit.eq(1),
                        self.loaded.eq(1),
                        self.commits.eq(self.commits + 1),
                    ]
        return m
