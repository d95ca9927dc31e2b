"""The simulation DRAM: an RTL AXI4 slave memory with a read latency and a
bandwidth cap, and its bit-accurate Python model.

Tessera's off-chip memory is modelled in RTL (not in Python per beat) so that
a compiled simulation of the whole accelerator runs at compiled speed. The two
figures that matter for the roofline are parameters: ``latency`` (cycles from
AR acceptance to the first R beat) and ``bytes_per_cycle`` (a bandwidth cap
shared by reads and writes). Several read bursts are outstanding, so a
streaming master hides the latency and reaches the full bandwidth, as it would
behind a real memory controller.

Backdoor: :attr:`DRAM.memory` is the :class:`amaranth.lib.memory.Memory` of
``size_bytes // bytes_per_beat`` words of ``data_width`` bits (word ``i``
holds bytes ``i*B .. i*B+B-1``, little-endian within the word). In pysim use
``ctx.set(dram.memory.data[i], v)`` / ``ctx.get(dram.memory.data[i])``; in
generated Verilog it is the reg array ``storage`` inside the module of the
DRAM instance (e.g. ``top.dram.storage`` or, flattened into the top, ``storage``).
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi import (BURST_INCR, RESP_DECERR, RESP_OKAY, RESP_SLVERR, AXI4Params,
                  AXI4Signature)

__all__ = ["DRAM", "DRAMModel", "RegFIFO", "MIN_LATENCY"]

#: The read pipeline's own depth: request queue -> maturity -> memory read
#: port -> R register. A latency below this cannot be modelled.
MIN_LATENCY = 3


def _check_int(name, value, *, low=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"DRAM {name} must be an int, not {value!r}")
    if low is not None and value < low:
        raise ValueError(f"DRAM {name} must be >= {low}, got {value}")


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class RegFIFO(wiring.Component):
    """A small first-word-fall-through FIFO in registers.

    ``i.ready`` depends only on the fill level (never on ``o.ready``) and
    ``o.valid``/``o.payload`` come straight from registers, so the FIFO adds
    no combinational path between its two sides.
    """

    def __init__(self, layout, depth: int):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"RegFIFO depth must be a positive int, got {depth!r}")
        self._layout = layout
        self.depth = depth
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        size = Shape.cast(self._layout).width
        slots = Array(Signal(size, name=f"slot{k}") for k in range(self.depth))
        wr = Signal(range(self.depth))
        rd = Signal(range(self.depth))
        push = self.i.valid & self.i.ready
        pop = self.o.valid & self.o.ready

        def bump(ptr):
            return Mux(ptr == self.depth - 1, 0, ptr + 1)

        m.d.comb += [
            self.i.ready.eq(self.level < self.depth),
            self.o.valid.eq(self.level != 0),
            self.o.payload.eq(slots[rd]),
        ]
        with m.If(push):
            m.d.sync += [slots[wr].eq(self.i.payload), wr.eq(bump(wr))]
        with m.If(pop):
            m.d.sync += rd.eq(bump(rd))
        m.d.sync += self.level.eq(self.level + push - pop)
        return m


class DRAM(wiring.Component):
    """A simulation DRAM: an AXI4 slave memory with latency and bandwidth.

    Parameters (keyword-only)
    -------------------------
    axi_params : AXI4Params
        Widths of the ``axi`` port.
    size_bytes : int
        Capacity; a power of two, at least one data beat, within the address
        space. Addresses at or beyond it answer DECERR.
    latency : int
        Cycles from the AR handshake to the first R beat of that burst
        (exactly, when the bandwidth and R allow; never less). At least
        ``MIN_LATENCY`` (3).
    bytes_per_cycle : int
        Bandwidth cap, shared by R and W beats, 1 .. bytes per beat. A token
        bucket earns ``bytes_per_cycle`` per cycle and a beat spends a full
        beat's bytes, so a narrower cap inserts idle cycles and the average
        is exact; at the bus width it allows one beat (R or W) per cycle.
    max_outstanding : int
        Read bursts in flight (AR accepted, last R beat not yet taken); also
        the depth of the AW queue.
    init : sequence of int, optional
        Initial memory words (for compiled simulations, where the backdoor is
        less convenient).

    Ports
    -----
    axi : In(AXI4Signature)
        INCR bursts of ``len + 1`` full-width beats. Other burst types or
        sizes answer SLVERR on every beat (reads) or on B (writes), and a
        burst reaching beyond ``size_bytes`` answers DECERR; neither writes.
        Unaligned start addresses are aligned down (the master's strobes
        say which bytes of the first beat are meant). Read bursts complete in
        order (AXI allows that for any IDs) and return their request's ID.
    read_bytes, write_bytes : Out(32)
        Bytes moved on R (whole beats) and W (strobed bytes), wrapping.
        Error beats count too: they are bus traffic.
    read_bursts, write_bursts : Out(32)
        AR and AW handshakes.

    The storage is ``self.memory`` (submodule ``storage``); see the module
    docstring for the backdoor.
    """

    def __init__(self, *, axi_params: AXI4Params, size_bytes: int, latency: int = 64,
                 bytes_per_cycle: int = 16, max_outstanding: int = 8, init=None):
        try:
            init = self._validate(axi_params, size_bytes, latency, bytes_per_cycle,
                                  max_outstanding, init)
        except (TypeError, ValueError):
            self._MustUse__silence = True   # rejected, not "created but never used"
            raise
        self.axi_params = axi_params
        self.size_bytes = size_bytes
        self.latency = latency
        self.bytes_per_cycle = bytes_per_cycle
        self.max_outstanding = max_outstanding
        self.words = size_bytes // axi_params.bytes_per_beat
        super().__init__({
            "axi": In(AXI4Signature(axi_params)),
            "read_bytes": Out(32),
            "write_bytes": Out(32),
            "read_bursts": Out(32),
            "write_bursts": Out(32),
        })
        self.memory = Memory(shape=unsigned(axi_params.data_width), depth=self.words, init=init)

    @staticmethod
    def _validate(axi_params, size_bytes, latency, bytes_per_cycle, max_outstanding, init):
        if not isinstance(axi_params, AXI4Params):
            raise TypeError(f"DRAM axi_params must be an AXI4Params, not {axi_params!r}")
        beat = axi_params.bytes_per_beat
        _check_int("size_bytes", size_bytes, low=beat)
        if size_bytes & (size_bytes - 1):
            raise ValueError(f"DRAM size_bytes must be a power of two, got {size_bytes}")
        if size_bytes > 1 << axi_params.addr_width:
            raise ValueError(f"DRAM size_bytes={size_bytes} exceeds the "
                             f"{axi_params.addr_width}-bit address space")
        _check_int("latency", latency, low=MIN_LATENCY)
        _check_int("bytes_per_cycle", bytes_per_cycle, low=1)
        if bytes_per_cycle > beat:
            raise ValueError(f"DRAM bytes_per_cycle={bytes_per_cycle} exceeds the "
                             f"{axi_params.data_width}-bit data bus ({beat} bytes per beat, "
                             f"at most one beat per cycle)")
        _check_int("max_outstanding", max_outstanding, low=1)
        if max_outstanding > 256:
            raise ValueError(f"DRAM max_outstanding must be <= 256, got {max_outstanding}")
        words = size_bytes // beat
        init = list(init) if init is not None else []
        if len(init) > words:
            raise ValueError(f"DRAM init has {len(init)} words, more than the {words} "
                             f"of size_bytes={size_bytes}")
        return init

    # -- helpers -------------------------------------------------------------------------

    def _decode(self, req):
        """(word index, response) of an AR/AW payload."""
        p = self.axi_params
        shift = p.size
        index = req.addr[shift:]
        end = index + req.len
        unsupported = (req.burst != BURST_INCR) | (req.size != p.size)
        out_of_range = end >= self.words
        return index, Mux(unsupported, RESP_SLVERR, Mux(out_of_range, RESP_DECERR, RESP_OKAY))

    def elaborate(self, platform):
        m = Module()
        p = self.axi_params
        axi = self.axi
        beat = p.bytes_per_beat
        index_bits = max(1, (self.words - 1).bit_length())

        m.submodules.storage = mem = self.memory
        rd = mem.read_port(transparent_for=())
        wp = mem.write_port(granularity=8)

        # -- bandwidth: one token bucket for R and W beats ---------------------------------
        # The bucket is capped below one beat, so at most one beat moves per cycle
        # and an idle period does not bank a burst above the configured rate.
        if self.bytes_per_cycle == beat:
            slot = C(1)
        else:
            credit = Signal(range(2 * beat))
            avail = credit + self.bytes_per_cycle
            slot = avail >= beat
        grant_r = Signal()
        grant_w = Signal()
        if self.bytes_per_cycle != beat:
            with m.If(grant_r | grant_w):
                m.d.sync += credit.eq(avail - beat)
            with m.Elif(avail >= beat):
                m.d.sync += credit.eq(beat - 1)
            with m.Else():
                m.d.sync += credit.eq(avail)

        # -- read requests: a queue with an arrival time per entry -------------------------
        # wr_ptr: next free; mat_ptr: first entry whose time has not come; rd_ptr: the
        # burst being issued. Entries mature in order, exactly at their due cycle
        # (at most one AR per cycle, so due times are distinct and increasing).
        depth = _pow2(max(2, self.max_outstanding))
        qbits = (depth - 1).bit_length()
        delay = self.latency - 2          # + maturity register + memory read register
        tbits = delay.bit_length() + 1
        req_layout = data.StructLayout({"index": index_bits, "len": 8, "id": p.id_width,
                                        "resp": 2, "due": tbits})
        queue = Array(Signal(req_layout.size, name=f"rq{k}") for k in range(depth))
        wr_ptr = Signal(qbits + 1)
        mat_ptr = Signal(qbits + 1)
        rd_ptr = Signal(qbits + 1)
        now = Signal(tbits)
        m.d.sync += now.eq(now + 1)

        inflight = Signal(range(self.max_outstanding + 1))
        ar_take = axi.ar.valid & axi.ar.ready
        r_done = axi.r.valid & axi.r.ready & axi.r.payload.last
        m.d.comb += axi.ar.ready.eq(inflight < self.max_outstanding)
        m.d.sync += inflight.eq(inflight + ar_take - r_done)

        ar_index, ar_resp = self._decode(axi.ar.payload)
        incoming = Signal(req_layout)
        m.d.comb += [
            incoming.index.eq(ar_index),
            incoming.len.eq(axi.ar.payload.len),
            incoming.id.eq(axi.ar.payload.id),
            incoming.resp.eq(ar_resp),
            incoming.due.eq(now + delay),
        ]
        with m.If(ar_take):
            m.d.sync += [
                queue[wr_ptr[:qbits]].eq(incoming),
                wr_ptr.eq(wr_ptr + 1),
                self.read_bursts.eq(self.read_bursts + 1),
            ]
        maturing = data.View(req_layout, queue[mat_ptr[:qbits]])
        with m.If((mat_ptr != wr_ptr) & (maturing.due == now)):
            m.d.sync += mat_ptr.eq(mat_ptr + 1)

        # -- read issue: memory read port, then the R register ------------------------------
        head = data.View(req_layout, queue[rd_ptr[:qbits]])
        r_beat = Signal(8)
        r_valid = Signal()
        r_resp = Signal(2)
        r_last = Signal()
        r_id = Signal(p.id_width)
        r_can = (rd_ptr != mat_ptr) & (~r_valid | axi.r.ready)
        m.d.comb += [
            rd.addr.eq(head.index + r_beat),
            rd.en.eq(grant_r),
            axi.r.valid.eq(r_valid),
            axi.r.payload.data.eq(Mux(r_resp == RESP_OKAY, rd.data, 0)),
            axi.r.payload.resp.eq(r_resp),
            axi.r.payload.last.eq(r_last),
            axi.r.payload.id.eq(r_id),
        ]
        with m.If(grant_r):
            m.d.sync += [r_valid.eq(1), r_resp.eq(head.resp), r_last.eq(r_beat == head.len),
                         r_id.eq(head.id)]
            with m.If(r_beat == head.len):
                m.d.sync += [r_beat.eq(0), rd_ptr.eq(rd_ptr + 1)]
            with m.Else():
                m.d.sync += r_beat.eq(r_beat + 1)
        with m.Elif(axi.r.ready):
            m.d.sync += r_valid.eq(0)
        with m.If(axi.r.valid & axi.r.ready):
            m.d.sync += self.read_bytes.eq(self.read_bytes + beat)

        # -- writes: AW queue, W beats into the write port, B queue -------------------------
        aw_layout = data.StructLayout({"index": index_bits, "len": 8, "id": p.id_width,
                                       "resp": 2})
        m.submodules.aw_queue = awq = RegFIFO(aw_layout, depth)
        m.submodules.b_queue = bq = RegFIFO(p.b_layout(), 2)
        aw_index, aw_resp = self._decode(axi.aw.payload)
        m.d.comb += [
            awq.i.valid.eq(axi.aw.valid),
            axi.aw.ready.eq(awq.i.ready),
            awq.i.payload.index.eq(aw_index),
            awq.i.payload.len.eq(axi.aw.payload.len),
            awq.i.payload.id.eq(axi.aw.payload.id),
            awq.i.payload.resp.eq(aw_resp),
            axi.b.valid.eq(bq.o.valid),
            axi.b.payload.eq(bq.o.payload),
            bq.o.ready.eq(axi.b.ready),
        ]
        with m.If(axi.aw.valid & axi.aw.ready):
            m.d.sync += self.write_bursts.eq(self.write_bursts + 1)
        wh = awq.o.payload
        w_beat = Signal(8)
        w_can = awq.o.valid & axi.w.valid & bq.i.ready
        w_end = w_beat == wh.len
        m.d.comb += [
            axi.w.ready.eq(grant_w),
            wp.addr.eq(wh.index + w_beat),
            wp.data.eq(axi.w.payload.data),
            wp.en.eq(Mux(grant_w & (wh.resp == RESP_OKAY), axi.w.payload.strb, 0)),
            awq.o.ready.eq(grant_w & w_end),
            bq.i.valid.eq(grant_w & w_end),
            bq.i.payload.id.eq(wh.id),
            bq.i.payload.resp.eq(wh.resp),
        ]
        with m.If(grant_w):
            m.d.sync += [
                w_beat.eq(Mux(w_end, 0, w_beat + 1)),
                self.write_bytes.eq(self.write_bytes
                                    + sum(axi.w.payload.strb[k] for k in range(beat))),
            ]

        # -- arbitration of the beat slot: alternate when both want it ----------------------
        prefer_w = Signal()
        m.d.comb += [
            grant_r.eq(slot & r_can & (~w_can | ~prefer_w)),
            grant_w.eq(slot & w_can & (~r_can | prefer_w)),
        ]
        with m.If(r_can & w_can & slot):
            m.d.sync += prefer_w.eq(~prefer_w)
        return m


class DRAMModel:
    """Bit-accurate transaction model of :class:`DRAM` (what each burst
    returns and writes; not its timing): a bytearray plus the AXI rules."""

    def __init__(self, *, axi_params: AXI4Params, size_bytes: int, init: bytes | None = None):
        self.p = axi_params
        self.size_bytes = size_bytes
        self.mem = bytearray(size_bytes)
        if init:
            self.mem[:len(init)] = init

    def _resp(self, addr, length, size, burst):
        if burst != BURST_INCR or size != self.p.size:
            return RESP_SLVERR
        beat = self.p.bytes_per_beat
        first = (addr & ((1 << self.p.addr_width) - 1)) // beat
        if (first + length + 1) * beat > self.size_bytes:
            return RESP_DECERR
        return RESP_OKAY

    def read(self, addr, length, *, size=None, burst=BURST_INCR):
        """R beats as a list of (data, resp) for a burst of ``length + 1`` beats."""
        size = self.p.size if size is None else size
        resp = self._resp(addr, length, size, burst)
        beat = self.p.bytes_per_beat
        if resp != RESP_OKAY:
            return [(0, resp)] * (length + 1)
        base = addr // beat * beat
        return [(int.from_bytes(self.mem[base + k * beat:base + (k + 1) * beat], "little"),
                 RESP_OKAY) for k in range(length + 1)]

    def write(self, addr, length, beats, *, size=None, burst=BURST_INCR):
        """Apply W beats [(data, strb), ...]; returns the B response."""
        size = self.p.size if size is None else size
        resp = self._resp(addr, length, size, burst)
        if resp != RESP_OKAY:
            return resp
        beat = self.p.bytes_per_beat
        base = addr // beat * beat
        for k, (value, strb) in enumerate(beats[:length + 1]):
            raw = value.to_bytes(beat, "little")
            for b in range(beat):
                if strb >> b & 1:
                    self.mem[base + k * beat + b] = raw[b]
        return resp

    def words(self):
        beat = self.p.bytes_per_beat
        return [int.from_bytes(self.mem[i:i + beat], "little")
                for i in range(0, self.size_bytes, beat)]
