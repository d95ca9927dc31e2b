"""The config loader: checks a bitstream as it streams in and writes it into
the shadow configurations over the config bus; commits only a good one.

The loader accepts one beat (``config_beat_words`` 32-bit words) per cycle. It checks the header (magic,
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

from .config import (CONFIG_WORD, FORMAT_VERSION, MAGIC, BitstreamFormat, ConfigBusSignature,
                     LoadError)
from .params import FabricParams

__all__ = ["ConfigLoader", "config_beat_layout", "crc_parameters"]


def crc_parameters(beat_words: int):
    """CRC-32 as in zlib (ISO-HDLC), one beat of little-endian words per step."""
    return crc.catalog.CRC32_ISO_HDLC(data_width=CONFIG_WORD * beat_words)


def config_beat_layout(beat_words: int) -> data.StructLayout:
    return data.StructLayout({"data": data.ArrayLayout(CONFIG_WORD, beat_words), "last": 1})


class ConfigLoader(wiring.Component):
    """Bitstream checker and config-bus master (one beat per cycle).

    Ports:
        i        -- bitstream beats (``last`` on the final beat)
        cfg      -- the config bus to the fabric
        busy     -- a bitstream is streaming in
        done     -- the most recent bitstream has ended (accepted or not)
        ended    -- one-cycle pulse when a bitstream ends (with its error code)
        error    -- LoadError of the most recent bitstream
        loaded   -- at least one bitstream has been committed
        cycles   -- cycles from the first beat of the last bitstream to its end
        commits  -- number of committed bitstreams (wraps)
    """

    def __init__(self, params: FabricParams):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params
        self.format = BitstreamFormat.for_params(params)
        self.payload_words = self.format.payload_words
        beat = params.config_beat_words
        super().__init__({
            "i": In(stream.Signature(config_beat_layout(beat))),
            "cfg": Out(ConfigBusSignature(beat)),
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
        fmt = self.format
        B = fmt.beat_words
        m.submodules.crc = crc_proc = crc_parameters(B).create()

        index = Signal(range(fmt.total_beats + 1))   # saturates one past the CRC beat
        err = Signal(4)
        check = Signal(4)                   # error found in the beat now arriving
        first = Signal(4)                   # ... or its early end
        beat = self.i.payload.data
        take = self.i.valid & self.i.ready
        at_start = ~self.busy

        m.d.comb += [
            self.i.ready.eq(1),
            crc_proc.data.eq(beat.as_value()),
            crc_proc.valid.eq(take & (index < fmt.crc_beat)),
            crc_proc.start.eq(take & at_start),
        ]

        # Check the header words that sit in the beat now arriving, in order:
        # the first wrong word names the error.
        expect = [(MAGIC, LoadError.BAD_MAGIC), (FORMAT_VERSION, LoadError.BAD_VERSION),
                  (self.params.hash32, LoadError.BAD_PARAMS_HASH),
                  (self.payload_words, LoadError.BAD_LENGTH)]
        with m.Switch(index):
            for b in range(fmt.header_beats):
                with m.Case(b):
                    words = [(w, e) for w, e in enumerate(expect) if w // B == b]
                    code = Const(LoadError.OK, 4)
                    for w, (want, error) in reversed(words):
                        code = Mux(beat[w % B] != want, error, code)
                    m.d.comb += check.eq(code)
            with m.Case(fmt.crc_beat):
                m.d.comb += check.eq(Mux(beat[0] == crc_proc.crc, LoadError.OK,
                                         LoadError.BAD_CRC))
            with m.Case(fmt.total_beats):
                m.d.comb += check.eq(LoadError.OVERRUN)
        # An early end is truncation unless the beat itself is already wrong.
        m.d.comb += first.eq(Mux(self.i.payload.last & (index < fmt.crc_beat) &
                                 (check == LoadError.OK), LoadError.TRUNCATED, check))

        err_now = Signal(4)
        m.d.comb += err_now.eq(Mux(err != LoadError.OK, err, first))

        is_payload = (index >= fmt.header_beats) & (index < fmt.crc_beat)
        m.d.sync += [
            self.cfg.write.eq(take & is_payload & (err_now == LoadError.OK)),
            self.cfg.addr.eq(index - fmt.header_beats),
            self.cfg.data.eq(beat),
            self.cfg.commit.eq(0),
        ]

        m.d.sync += self.ended.eq(take & self.i.payload.last)
        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        with m.If(take):
            with m.If(at_start):
                m.d.sync += [self.busy.eq(1), self.done.eq(0), self.cycles.eq(1)]
            with m.If(index < fmt.total_beats):
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
