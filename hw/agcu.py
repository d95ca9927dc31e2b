"""The AGCU (address generator and coalescing unit): the fabric's portal to
off-chip memory, as in Plasticine (Prabhakar et al., ISCA 2017: address
generators plus a coalescing unit) and the SambaNova RDU's AGCUs.

An AGCU runs two streams, each an affine tile pattern (a counter chain of
``AGCU_COUNTERS`` counters with a count and a byte stride each, plus a base
address): the **read stream** turns DRAM bytes into vectors on ``o_vec`` and
the **write stream** stores the vectors of ``i_vec``. One vector is ``lanes``
elements, contiguous in DRAM; each pattern's ``elem`` field sets the element
width, so the PCU gets int8/int16 tensors one element per 32-bit lane (its
multiplier takes a lane's low 16 bits, signed) without any packing:

==== ============== ========== ==================== ===============
elem name           DRAM bytes read: lane =         write: stores
==== ============== ========== ==================== ===============
0    ``ELEM_INT32`` 4 per lane the 32-bit word      the 32-bit word
1    ``ELEM_INT16`` 2 per lane int16, sign-extended the low 16 bits
2    ``ELEM_INT8``  1 per lane int8, sign-extended  the low 8 bits
3    ``ELEM_UINT8`` 1 per lane uint8, zero-extended the low 8 bits
==== ============== ========== ==================== ===============

``base`` and the strides are byte values that must be multiples of the
element size (4-, 2- or 1-aligned); address bits below it are ignored.
Counters and strides stay in bytes whatever the element width.

Vector addresses need not be beat-aligned:

* the read side fetches the aligned beats that cover each vector, and a
  byte-rotating coalescer (``_ReadAssembler``: a log-depth byte shifter)
  moves the vector's bytes down, then widens each element into its lane; a
  beat shared by consecutive vectors is fetched once and kept, so narrow
  vectors (an int8 vector of 8 lanes is half a 16-byte beat) come out one
  per cycle, several per beat;
* the write side narrows each lane to the element width and shifts the bytes
  into the beats the vector spans with per-byte strobes (``_WritePacker``);
  a beat shared by consecutive vectors is written once with all their bytes,
  so no byte outside the pattern is touched.

Coalescing (``_Walker``): consecutive vectors whose beats continue each other
become one AXI4 INCR burst of up to 16 beats that never crosses a 4 KiB page
(a burst also closes after :func:`max_vectors` vectors, enough for 16 beats
of int8 vectors); the exact rule is in :mod:`tessera.sim.agcu_model`, whose
``AGCUModel.bursts`` the tests compare against the AXI traffic. Reads keep
``read_bursts`` bursts in flight with a ``read_buffer_beats`` deep read-data
buffer reserved per burst (credits), so R is never stalled and the 64-cycle
DRAM latency is hidden at one beat per cycle (8 bursts x 16 beats x 16 B =
2 KiB in flight). Writes are store-and-forward per burst: W beats collect in
a ``write_buffer_beats`` buffer and a burst's AW is issued only when all its
beats are there, so a granted write never waits on the fabric (the
interconnect passes W in AW grant order; an early AW would block every other
master's writes until this one's data came). All transactions use ID 0, so
R data and B responses arrive in order.

Throughput: one vector per cycle on each of ``o_vec`` and ``i_vec``. A
contiguous stream therefore moves ``min(beat, lanes x element bytes)`` bytes
per cycle: the DRAM's 16 B/cycle for int32 at 4+ lanes, int16 at 8+ lanes
and int8 at 16+ lanes; half of it for int8 at 8 lanes (the vector port, not
the AGCU, is then the limit). Measured figures are in the tests
(``test_streaming_*``) and in docs/architecture.md.

The two streams run concurrently and independently: what the read stream
sees of bytes the write stream is changing in the same run is a race, so
the compiler gives them disjoint regions (or separate runs).
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import BURST_INCR, AXI4Params, AXI4Signature
from .links import vector_layout
from .params import FabricParams

__all__ = ["AGCU", "ScalarPort", "AGCU_COUNTERS", "COUNT_BITS", "ELEM_BYTES", "ELEM_INT32", "ELEM_INT16",
           "ELEM_INT8", "ELEM_UINT8", "MAX_BURST", "MAX_VECTORS", "PAGE_BYTES",
           "max_vectors", "pattern_layout", "agcu_config_layout", "agcu_axi_params"]

#: Counters in each stream's chain (innermost first).
AGCU_COUNTERS = 3
#: Width of each counter's ``count`` field.
COUNT_BITS = 16
#: Longest AXI4 INCR burst the AGCU issues, in beats.
MAX_BURST = 16
#: The least number of vectors after which a burst is closed (see
#: :func:`max_vectors`).
MAX_VECTORS = 32
#: INCR bursts never cross a 4 KiB boundary (AXI4).
PAGE_BYTES = 4096

#: Element widths (the ``elem`` field of a pattern).
ELEM_INT32 = 0      #: 32-bit words (read and write whole lanes)
ELEM_INT16 = 1      #: int16: read sign-extends, write stores the low 16 bits
ELEM_INT8 = 2       #: int8: read sign-extends, write stores the low 8 bits
ELEM_UINT8 = 3      #: uint8: read zero-extends, write stores the low 8 bits
#: DRAM bytes per element, indexed by ``elem``.
ELEM_BYTES = (4, 2, 1, 1)


def max_vectors(lanes: int, beat_bytes: int) -> int:
    """A burst is closed after this many vectors: enough for a whole 16-beat
    burst of the smallest (int8) vectors, and at least ``MAX_VECTORS``. This
    bounds the records that wait on a burst not yet issued, so the record
    FIFOs cannot deadlock on it (a stride-0 or sub-beat pattern would
    otherwise grow one burst forever)."""
    return max(MAX_VECTORS, -(-MAX_BURST * beat_bytes // lanes))


def pattern_layout(*, read: bool) -> data.StructLayout:
    """One stream's pattern: ``en``, ``base`` (byte address),
    ``count[i]`` and signed byte ``stride[i]`` per counter (innermost first),
    ``elem`` (element width, ``ELEM_*``: base and strides are multiples of
    ``ELEM_BYTES[elem]``; the low bits of ``base`` below that are ignored);
    the read stream adds ``last_on`` (0: never; k: mark ``last`` on the wrap
    of counter k-1)."""
    fields = {
        "en": 1,
        "base": 32,
        "count": data.ArrayLayout(COUNT_BITS, AGCU_COUNTERS),
        "stride": data.ArrayLayout(signed(32), AGCU_COUNTERS),
    }
    if read:
        fields["last_on"] = range(AGCU_COUNTERS + 1)
    fields["elem"] = 2
    return data.StructLayout(fields)


def agcu_config_layout(params: FabricParams) -> data.StructLayout:
    """``rd`` and ``wr`` patterns (3 counters each), and ``scal``: the read
    stream leaves through the :class:`ScalarPort` onto the scalar network,
    one lane per word, instead of onto the vector network."""
    return data.StructLayout({"rd": pattern_layout(read=True), "wr": pattern_layout(read=False),
                              "scal": 1})


class ScalarPort(wiring.Component):
    """The AGCU's scalar output: serializes each read vector into ``lanes``
    scalar words, lane 0 first, at one word per cycle (``last`` on the final
    lane of a vector marked ``last``). A stream of row vectors thus becomes
    the element stream a PCU broadcasts (``BC`` = a scalar input), e.g. the
    A operand of an outer-product GEMM. The output is registered."""

    def __init__(self, params: FabricParams):
        from .links import scalar_layout
        self.params = params
        super().__init__({
            "i": In(stream.Signature(vector_layout(params))),
            "o": Out(stream.Signature(scalar_layout(params))),
        })

    def elaborate(self, platform):
        m = Module()
        L = self.params.lanes
        held = Signal(vector_layout(self.params))
        full = Signal()
        lane = Signal(range(max(L, 2)))
        words = Array(held.data[j] for j in range(L))
        m.d.comb += [
            self.o.valid.eq(full),
            self.o.payload.data.eq(words[lane]),
            self.o.payload.last.eq(held.last & (lane == L - 1)),
        ]
        emptying = self.o.ready & full & (lane == L - 1)
        m.d.comb += self.i.ready.eq(~full | emptying)
        with m.If(self.o.ready & full):
            m.d.sync += lane.eq(Mux(lane == L - 1, 0, lane + 1))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), full.eq(1)]
        with m.Elif(emptying):
            m.d.sync += full.eq(0)
        return m


def agcu_axi_params(params: FabricParams) -> AXI4Params:
    return AXI4Params(data_width=params.dram_bytes_per_cycle * 8, addr_width=32, id_width=4)


def _log2(n: int) -> int:
    return n.bit_length() - 1


def _span_beats(vector_bytes: int, beat_bytes: int, align: int = 4) -> int:
    """Most beats an `align`-aligned vector can touch."""
    return (beat_bytes - align + vector_bytes - 1) // beat_bytes + 1


def _max_span(lanes: int, beat_bytes: int) -> int:
    """Most beats a vector of any element width can touch (32-bit vectors,
    4-aligned, are the widest)."""
    return max(_span_beats(lanes * es, beat_bytes, es) for es in ELEM_BYTES)


def _record_layout(beat_bytes: int, nb_max: int) -> data.StructLayout:
    """Per-vector instructions from the walker to the data path: byte offset
    in the first beat, beats spanned, first beat shared with the previous
    vector, last beat shared with the next one (kept), and ``last``."""
    return data.StructLayout({
        "o": _log2(beat_bytes),
        "nb": range(nb_max + 1),
        "share": 1,
        "keep": 1,
        "last": 1,
    })


def _burst_layout(beat_bytes: int) -> data.StructLayout:
    return data.StructLayout({"beat": 32 - _log2(beat_bytes), "n": range(MAX_BURST + 1)})


class _Walker(wiring.Component):
    """One stream's address generator and coalescer.

    A counter chain walks the pattern one vector per cycle; each vector
    yields a record (for the data path) and its new beats, which a burst
    former packs into INCR bursts (the rule of ``AGCUModel.bursts``). Both
    outputs are FIFOs owned here, so ``records``/``bursts`` valid comes from
    FIFO state only. ``done``: the pattern is walked and every record and
    burst is in its FIFO.
    """

    def __init__(self, *, lanes: int, beat_bytes: int, read: bool, record_depth: int,
                 burst_depth: int = 4):
        self.lanes = lanes
        self.beat_bytes = beat_bytes
        self.max_vectors = max_vectors(lanes, beat_bytes)
        self.nb_max = _max_span(lanes, beat_bytes)
        self.record_depth = record_depth
        self.burst_depth = burst_depth
        self.read = read
        self.rec_layout = _record_layout(beat_bytes, self.nb_max)
        self.burst_layout = _burst_layout(beat_bytes)
        super().__init__({
            "pattern": In(pattern_layout(read=read)),
            "start": In(1),
            "records": Out(stream.Signature(self.rec_layout)),
            "bursts": Out(stream.Signature(self.burst_layout)),
            "record_level": Out(range(record_depth + 1)),
            "burst_level": Out(range(burst_depth + 1)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pat = self.pattern
        bb = self.beat_bytes
        lanes = self.lanes
        lb = _log2(bb)
        page = PAGE_BYTES // bb
        pbits = _log2(page)
        n = AGCU_COUNTERS

        m.submodules.rec_q = rec_q = fifo.SyncFIFOBuffered(
            width=self.rec_layout.size, depth=self.record_depth)
        m.submodules.burst_q = burst_q = fifo.SyncFIFOBuffered(
            width=self.burst_layout.size, depth=self.burst_depth)
        m.d.comb += [
            self.records.valid.eq(rec_q.r_rdy),
            self.records.payload.eq(rec_q.r_data),
            rec_q.r_en.eq(self.records.ready),
            self.record_level.eq(rec_q.level),
            self.bursts.valid.eq(burst_q.r_rdy),
            self.bursts.payload.eq(burst_q.r_data),
            burst_q.r_en.eq(self.bursts.ready),
            self.burst_level.eq(burst_q.level),
        ]

        # -- counter chain ---------------------------------------------------------------
        running = Signal()
        ctr = [Signal(COUNT_BITS, name=f"c{i}") for i in range(n)]
        acc = [Signal(32, name=f"acc{i}") for i in range(n)]   # base + sum_{j>=i} c_j*s_j
        at_max = [ctr[i] == pat.count[i] - 1 for i in range(n)]
        wrap = [Cat(*at_max[:i + 1]).all() for i in range(n)]
        final = wrap[n - 1]
        addr = acc[0]
        vlast = Signal()
        if self.read:
            m.d.comb += vlast.eq(Cat(*[(pat.last_on == i + 1) & wrap[i] for i in range(n)]).any())

        # -- per-vector record and new-beat range ----------------------------------------
        beat_bits = 32 - lb
        f = addr[lb:]
        # the address bits below the element size are ignored (vectors are
        # element-aligned), so a stray low bit can never widen a vector's span
        o = Cat(addr[0] & pat.elem[1], addr[1] & (pat.elem != ELEM_INT32), addr[2:lb])
        # beats spanned: from the byte offset and the vector's size in bytes
        vb_m1 = Signal(range(4 * lanes))
        with m.Switch(pat.elem):
            for e, es in enumerate(ELEM_BYTES):
                with m.Case(e):
                    m.d.comb += vb_m1.eq(es * lanes - 1)
        nb = Signal(range(self.nb_max + 1))
        m.d.comb += nb.eq(((o + vb_m1) >> lb) + 1)
        have_prev = Signal()
        lp = Signal(beat_bits)        # last beat of the previous vector
        lp1 = Signal(beat_bits)       # lp + 1
        share = have_prev & (f == lp)
        contig = have_prev & (f == lp1)

        pend = Signal(self.rec_layout)       # the previous vector's record, keep not yet known
        pend_valid = Signal()

        # burst former input (one vector's new beats) and state
        in_valid = Signal()
        in_lo = Signal(beat_bits)
        in_k = Signal(range(self.nb_max + 1))
        in_brk = Signal()
        is_open = Signal()
        bs = Signal(beat_bits)
        bn = Signal(range(MAX_BURST + 1))
        nv = Signal(range(self.max_vectors + 1))

        consume = Signal()
        adv = Signal()
        m.d.comb += adv.eq(running & rec_q.w_rdy & (~in_valid | consume))

        rec_push = Signal(self.rec_layout)
        m.d.comb += [rec_q.w_data.eq(rec_push), rec_push.eq(pend)]
        with m.If(adv):
            m.d.comb += [rec_q.w_en.eq(pend_valid), rec_push.keep.eq(share)]
            m.d.sync += [
                pend.o.eq(o), pend.nb.eq(nb), pend.share.eq(share), pend.keep.eq(0),
                pend.last.eq(vlast), pend_valid.eq(1),
                have_prev.eq(1), lp.eq(f + nb - 1), lp1.eq(f + nb),
                in_valid.eq(1), in_lo.eq(Mux(share, lp1, f)), in_k.eq(nb - share),
                in_brk.eq(~(share | contig)),
            ]
            with m.If(final):
                m.d.sync += running.eq(0)
            for i in range(n):
                # step counter i when every inner counter wraps and counter i does not
                cond = ~at_max[i] & (Cat(*at_max[:i]).all() if i else C(1))
                with m.If(cond):
                    nxt = (acc[i] + pat.stride[i].as_unsigned())[:32]
                    m.d.sync += ctr[i].eq(ctr[i] + 1)
                    for j in range(i + 1):
                        m.d.sync += acc[j].eq(nxt)
                    for j in range(i):
                        m.d.sync += ctr[j].eq(0)
        with m.Elif(~running & pend_valid):
            m.d.comb += rec_q.w_en.eq(1)        # flush the final record (keep = 0)
            with m.If(rec_q.w_rdy):
                m.d.sync += pend_valid.eq(0)
        with m.If(consume & ~adv):
            m.d.sync += in_valid.eq(0)

        # -- burst former -------------------------------------------------------------------
        def page_left(x):
            return page - x[:pbits]

        def vmin(a, b):
            return Mux(a < b, a, b)

        ext = is_open & ~in_brk & (nv != self.max_vectors)
        room_cur = vmin(MAX_BURST - bn, page_left(in_lo))
        fit = Signal(range(self.nb_max + 1))
        m.d.comb += fit.eq(Mux(ext, vmin(in_k, room_cur), 0))
        rest = Signal(range(self.nb_max + 1))
        m.d.comb += rest.eq(in_k - fit)
        lo2 = Signal(beat_bits)
        m.d.comb += lo2.eq(in_lo + fit)
        room_new = vmin(MAX_BURST, page_left(lo2))
        bsum = Signal(range(MAX_BURST + 1))
        m.d.comb += bsum.eq(bn + fit)

        push = Signal()
        push_beat = Signal(beat_bits)
        push_n = Signal(range(MAX_BURST + 1))
        m.d.comb += [
            burst_q.w_en.eq(push),
            burst_q.w_data.eq(Cat(push_beat, push_n)),
        ]

        def open_new(lo, k):
            m.d.sync += [is_open.eq(1), bs.eq(lo), bn.eq(k), nv.eq(1)]

        with m.If(in_valid & burst_q.w_rdy):
            with m.If(ext):
                with m.If(rest == 0):
                    m.d.comb += consume.eq(1)
                    m.d.sync += [bn.eq(bsum), nv.eq(nv + 1)]
                    with m.If((bsum == MAX_BURST) | ((fit != 0) & (fit == page_left(in_lo)))):
                        m.d.comb += [push.eq(1), push_beat.eq(bs), push_n.eq(bsum)]
                        m.d.sync += is_open.eq(0)
                with m.Else():
                    m.d.comb += [push.eq(1), push_beat.eq(bs), push_n.eq(bsum)]
                    m.d.sync += is_open.eq(0)
                    with m.If(rest < room_new):
                        m.d.comb += consume.eq(1)
                        open_new(lo2, rest)
                    with m.Else():
                        m.d.sync += [in_lo.eq(lo2), in_k.eq(rest)]
            with m.Elif(is_open):
                # the open burst cannot take this vector: close it
                m.d.comb += [push.eq(1), push_beat.eq(bs), push_n.eq(bn)]
                m.d.sync += is_open.eq(0)
                with m.If(in_k == 0):
                    m.d.comb += consume.eq(1)
                with m.Elif(in_k < room_new):
                    m.d.comb += consume.eq(1)
                    open_new(in_lo, in_k)
            with m.Else():
                with m.If(in_k == 0):
                    m.d.comb += consume.eq(1)
                with m.Elif(in_k < room_new):
                    m.d.comb += consume.eq(1)
                    open_new(in_lo, in_k)
                with m.Else():
                    # the beats reach a page end or fill a burst: issue it whole
                    m.d.comb += [push.eq(1), push_beat.eq(in_lo), push_n.eq(room_new)]
                    with m.If(in_k == room_new):
                        m.d.comb += consume.eq(1)
                    with m.Else():
                        m.d.sync += [in_lo.eq(in_lo + room_new), in_k.eq(in_k - room_new)]
        with m.Elif(~in_valid & ~running & is_open & burst_q.w_rdy):
            m.d.comb += [push.eq(1), push_beat.eq(bs), push_n.eq(bn)]
            m.d.sync += is_open.eq(0)

        m.d.comb += self.done.eq(~running & ~pend_valid & ~in_valid & ~is_open)

        # -- start ---------------------------------------------------------------------------
        with m.If(self.start):
            nonempty = pat.en & Cat(*[pat.count[i] != 0 for i in range(n)]).all()
            m.d.sync += [running.eq(nonempty), have_prev.eq(0), pend_valid.eq(0),
                         in_valid.eq(0), is_open.eq(0)]
            for i in range(n):
                m.d.sync += [ctr[i].eq(0), acc[i].eq(pat.base)]
        return m


class _ReadAssembler(wiring.Component):
    """The read side's byte-rotating coalescer: takes R beats in order and a
    record per vector, gathers the beats a vector spans (starting with the
    kept last beat of the previous vector when shared), rotates them by the
    vector's byte offset (a log-depth byte shifter) and widens each element
    into its lane per ``elem``. One vector per cycle when each vector needs
    at most one new beat (so several narrow vectors per beat are one per
    cycle too)."""

    def __init__(self, *, lanes: int, beat_bytes: int, rec_layout, params: FabricParams):
        self.lanes = lanes
        self.beat_bytes = beat_bytes
        self.nb_max = _max_span(lanes, beat_bytes)
        super().__init__({
            "records": In(stream.Signature(rec_layout)),
            "beats": In(stream.Signature(8 * beat_bytes)),
            "elem": In(2),
            "o": Out(stream.Signature(vector_layout(params))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        nbm = self.nb_max
        rec = self.records.payload
        window = [Signal(8 * self.beat_bytes, name=f"w{i}") for i in range(nbm)]
        cnt = Signal(range(nbm + 1))            # new beats gathered for this vector
        have = Signal(range(nbm + 2))
        m.d.comb += have.eq(cnt + rec.share)

        full = [Signal(8 * self.beat_bytes, name=f"f{i}") for i in range(nbm)]
        for i in range(nbm):
            m.d.comb += full[i].eq(Mux(have == i, self.beats.payload, window[i]))

        out_valid = Signal()
        slot_free = ~out_valid | self.o.ready
        complete = Signal()
        take = Signal()
        m.d.comb += [
            complete.eq(self.records.valid & slot_free
                        & ((have == rec.nb) | ((have + 1 == rec.nb) & self.beats.valid))),
            take.eq(self.records.valid & self.beats.valid & (have < rec.nb)
                    & ((have + 1 < rec.nb) | slot_free)),
            self.beats.ready.eq(take),
            self.records.ready.eq(complete),
            self.o.valid.eq(out_valid),
        ]

        # byte rotator: the window shifted down by the byte offset, most
        # significant offset bit first, keeping only the bytes still needed.
        # A 32-bit vector is 4-aligned, so the sub-word stages (offset bits 1
        # and 0) only shift the narrow vectors, which fill at most the low
        # 2 x lanes bytes: those stages are half as wide.
        x = Cat(*full)
        for k in reversed(range(2, _log2(self.beat_bytes))):
            need = 8 * (4 * lanes + (1 << k) - 1)
            x = Mux(rec.o[k], x[8 << k:], x)[:need]
        lo = x[:8 * (2 * lanes + 3)]
        for k in (1, 0):
            need = 8 * (2 * lanes + (1 << k) - 1)
            lo = Mux(rec.o[k], lo[8 << k:], lo)[:need]
        vbytes = Signal(32 * lanes)
        m.d.comb += vbytes.eq(Cat(lo[:16 * lanes], x[16 * lanes:32 * lanes]))
        # element widening: lane i is bytes 4i.., 2i.. or i of the vector
        lane = [Signal(32, name=f"lane{i}") for i in range(lanes)]
        unsigned = self.elem == ELEM_UINT8
        for i in range(lanes):
            w32 = vbytes.word_select(i, 32)
            w16 = vbytes.word_select(i, 16)
            w8 = vbytes.word_select(i, 8)
            with m.Switch(self.elem):
                with m.Case(ELEM_INT32):
                    m.d.comb += lane[i].eq(w32)
                with m.Case(ELEM_INT16):
                    m.d.comb += lane[i].eq(Cat(w16, w16[15].replicate(16)))
                with m.Default():
                    m.d.comb += lane[i].eq(Cat(w8, (w8[7] & ~unsigned).replicate(24)))
        with m.If(complete):
            m.d.sync += [out_valid.eq(1), self.o.payload.last.eq(rec.last), cnt.eq(0)]
            m.d.sync += [self.o.payload.data[i].eq(lane[i]) for i in range(lanes)]
            with m.Switch(rec.nb):
                for k in range(1, nbm + 1):
                    with m.Case(k):
                        m.d.sync += window[0].eq(full[k - 1])
        with m.Else():
            with m.If(self.o.ready):
                m.d.sync += out_valid.eq(0)
            with m.If(take):
                m.d.sync += cnt.eq(cnt + 1)
                for i in range(nbm):
                    with m.If(have == i):
                        m.d.sync += window[i].eq(self.beats.payload)
        return m


class _WritePacker(wiring.Component):
    """The write side: narrows each lane to the element width (``elem``),
    places the vector's bytes into the beats it spans (a log-depth byte
    shifter) with byte strobes, merges a beat shared with the previous
    vector, keeps a beat shared with the next one, and emits the rest as W
    beats; ``last`` comes from the walker's burst lengths (``lens``). The
    beats wait in the AGCU's write buffer until their burst's AW is issued."""

    def __init__(self, *, lanes: int, beat_bytes: int, rec_layout, params: FabricParams):
        self.lanes = lanes
        self.beat_bytes = beat_bytes
        self.nb_max = _max_span(lanes, beat_bytes)
        super().__init__({
            "records": In(stream.Signature(rec_layout)),
            "i": In(stream.Signature(vector_layout(params))),
            "elem": In(2),
            "lens": In(stream.Signature(8)),
            "w": Out(stream.Signature(data.StructLayout({
                "data": 8 * beat_bytes, "strb": beat_bytes, "last": 1}))),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bw = self.beat_bytes             # bytes per beat: the unit of merging and strobes
        nbm = self.nb_max
        lanes = self.lanes
        rec = self.records.payload
        vec = self.i.payload.data

        # the vector's bytes, packed at the element width, with their strobes
        packed = Signal(32 * lanes)
        pstrb = Signal(4 * lanes)
        is32 = self.elem == ELEM_INT32
        with m.Switch(self.elem):
            with m.Case(ELEM_INT32):
                m.d.comb += [packed.eq(Cat(*vec)), pstrb.eq((1 << 4 * lanes) - 1)]
            with m.Case(ELEM_INT16):
                m.d.comb += [packed.eq(Cat(*[v[:16] for v in vec])),
                             pstrb.eq((1 << 2 * lanes) - 1)]
            with m.Default():
                m.d.comb += [packed.eq(Cat(*[v[:8] for v in vec])),
                             pstrb.eq((1 << lanes) - 1)]
        # G: the packed bytes shifted up by the byte offset into the window
        # (byte j of the window), least significant offset bit first. The
        # sub-word stages (offset bits 0 and 1) only shift narrow vectors
        # (a 32-bit vector is 4-aligned), which fill the low 2 x lanes bytes.
        half = 2 * lanes
        xd, xs = packed[:8 * half], pstrb[:half]
        for k in (0, 1):
            xd = Mux(rec.o[k], Cat(C(0, 8 << k), xd), xd)[:8 * (half + (2 << k) - 1)]
            xs = Mux(rec.o[k], Cat(C(0, 1 << k), xs), xs)[:half + (2 << k) - 1]
        over = min(3, half)             # bytes a narrow vector can spill above `half`
        xd = Cat(xd[:8 * half], Mux(is32, packed[8 * half:8 * (half + over)], xd[8 * half:]),
                 packed[8 * (half + over):])
        xs = Cat(xs[:half], Mux(is32, pstrb[half:half + over], xs[half:]),
                 pstrb[half + over:])
        for k in range(2, _log2(self.beat_bytes)):
            width = min(4 * lanes + (2 << k) - 4, nbm * bw)
            xd = Mux(rec.o[k], Cat(C(0, 8 << k), xd), xd)[:8 * width]
            xs = Mux(rec.o[k], Cat(C(0, 1 << k), xs), xs)[:width]
        gall = Signal(8 * nbm * bw)
        gsall = Signal(nbm * bw)
        m.d.comb += [gall.eq(xd), gsall.eq(xs)]
        gw = [gall.word_select(j, 8) for j in range(nbm * bw)]
        gs = [gsall[j] for j in range(nbm * bw)]
        pend_w = [Signal(8, name=f"pw{j}") for j in range(bw)]
        pend_s = [Signal(name=f"ps{j}") for j in range(bw)]
        mw = list(gw)
        ms = list(gs)
        for j in range(bw):
            mw[j] = Mux(rec.share & ~gs[j], pend_w[j], gw[j])
            ms[j] = gs[j] | (rec.share & pend_s[j])

        fw = [Signal(8, name=f"fw{j}") for j in range(nbm * bw)]
        fs = [Signal(name=f"fs{j}") for j in range(nbm * bw)]
        idx = Signal(range(nbm))
        n_last = Signal(range(nbm))
        emitting = Signal()
        bc = Signal(8)

        w = self.w
        w_fire = w.valid & w.ready
        m.d.comb += [
            w.valid.eq(emitting & self.lens.valid),
            w.payload.last.eq(bc == self.lens.payload),
        ]
        with m.Switch(idx):
            for b in range(nbm):
                with m.Case(b):
                    m.d.comb += w.payload.data.eq(Cat(*fw[b * bw:(b + 1) * bw]))
                    m.d.comb += w.payload.strb.eq(Cat(*fs[b * bw:(b + 1) * bw]))
        with m.If(w_fire):
            m.d.sync += idx.eq(idx + 1)
            with m.If(w.payload.last):
                m.d.sync += bc.eq(0)
                m.d.comb += self.lens.ready.eq(1)
            with m.Else():
                m.d.sync += bc.eq(bc + 1)
            with m.If(idx == n_last):
                m.d.sync += emitting.eq(0)

        can_load = ~emitting | (w_fire & (idx == n_last))
        load = Signal()
        m.d.comb += [
            self.i.ready.eq(self.records.valid & can_load),
            load.eq(self.i.ready & self.i.valid),
            self.records.ready.eq(load),
            self.idle.eq(~emitting),
        ]
        n_emit = rec.nb - rec.keep
        with m.If(load):
            m.d.sync += [idx.eq(0), n_last.eq(n_emit - 1), emitting.eq(n_emit != 0)]
            m.d.sync += [fw[j].eq(mw[j]) for j in range(nbm * bw)]
            m.d.sync += [fs[j].eq(ms[j]) for j in range(nbm * bw)]
            with m.If(rec.keep):
                with m.Switch(rec.nb):
                    for k in range(1, nbm + 1):
                        with m.Case(k):
                            for j in range(bw):
                                m.d.sync += [pend_w[j].eq(mw[(k - 1) * bw + j]),
                                             pend_s[j].eq(ms[(k - 1) * bw + j])]
        return m


class AGCU(wiring.Component):
    """Address generator and coalescing unit (Plasticine's AG + coalescing
    unit): affine read and write streams between DRAM (an AXI4 master) and
    the fabric's vector network. See the module docstring.

    Parameters
    ----------
    params : FabricParams
        ``lanes`` sets the vector (``lanes`` x 32 bits) and
        ``dram_bytes_per_cycle`` the AXI data width.
    read_bursts : int, keyword-only
        Read bursts in flight (default 8).
    read_buffer_beats : int, keyword-only
        Read-data buffer, reserved per burst before its AR (default 128 =
        8 x 16 beats: at 16 B/cycle it covers more than 64 cycles of latency).
    write_bursts : int, keyword-only
        Write bursts awaiting B (default 16).
    write_buffer_beats : int, keyword-only
        W beats buffered (default 32, at least ``MAX_BURST``): a burst's AW
        leaves only when all its beats are here, so W never waits on the
        fabric (see the write stream in ``elaborate``).

    Ports
    -----
    config : In(config_layout(params))
        The active configuration; hold it stable while ``busy``.
    axi : Out(AXI4Signature)
        The memory port (INCR bursts, full-width beats, ID 0).
    o_vec : Out(stream of vector_layout)
        Read-stream vectors (``last`` per ``config.rd.last_on``).
    i_vec : In(stream of vector_layout)
        Write-stream vectors (``last`` is ignored).
    start : In(1)
        Pulse: begin both streams (ignored while ``busy``).
    busy, done : Out(1)
        ``done`` rises when both streams are complete (every read vector out,
        every write acknowledged on B) and stays until the next ``start``.
    read_bytes, write_bytes : Out(32)
        AXI traffic since ``start``: R beats x beat bytes, W strobed bytes.
    perf_active, perf_stalled, perf_starved : Out(1)
        Per busy cycle, exactly one: a vector moved on ``o_vec`` or
        ``i_vec`` (active); else some output (``o_vec``, AR, AW, W) holds
        valid without ready (stalled); else waiting on DRAM or the fabric
        (starved).
    """

    def __init__(self, params: FabricParams, *, read_bursts: int = 8,
                 read_buffer_beats: int = 128, write_bursts: int = 16,
                 write_buffer_beats: int = 2 * MAX_BURST):
        if not isinstance(params, FabricParams):
            raise TypeError(f"AGCU params must be a FabricParams, not {params!r}")
        # The read buffer must hold a whole burst beside the beats of a vector
        # that straddles two bursts (which cannot leave until the second one
        # arrives), or the credit reservation could deadlock.
        for name, value, low, high in (("read_bursts", read_bursts, 1, 256),
                                       ("read_buffer_beats", read_buffer_beats, 2 * MAX_BURST,
                                        4096),
                                       ("write_bursts", write_bursts, 1, 256),
                                       ("write_buffer_beats", write_buffer_beats, MAX_BURST,
                                        4096)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"AGCU {name} must be an int, not {value!r}")
            if not low <= value <= high:
                raise ValueError(f"AGCU {name} must be in {low}..{high}, got {value}")
        beat = params.dram_bytes_per_cycle
        if not 4 <= beat <= 128:
            raise ValueError(f"AGCU needs FabricParams.dram_bytes_per_cycle in 4..128 (an AXI4 "
                             f"data bus of 32..1024 bits), got {beat}")
        if _span_beats(4 * params.lanes, beat) > MAX_BURST:
            raise ValueError(f"AGCU: a vector of {params.lanes} lanes spans more than "
                             f"{MAX_BURST} beats of {beat} bytes")
        self.params = params
        self.read_bursts = read_bursts
        self.read_buffer_beats = read_buffer_beats
        self.write_bursts = write_bursts
        self.write_buffer_beats = write_buffer_beats
        self.axi_params = agcu_axi_params(params)
        vsig = stream.Signature(vector_layout(params))
        super().__init__({
            "config": In(agcu_config_layout(params)),
            "axi": Out(AXI4Signature(self.axi_params)),
            "o_vec": Out(vsig),
            "i_vec": In(vsig),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "read_bytes": Out(32),
            "write_bytes": Out(32),
            "perf_active": Out(1),
            "perf_starved": Out(1),
            "perf_stalled": Out(1),
        })

    @staticmethod
    def config_layout(params: FabricParams) -> data.StructLayout:
        return agcu_config_layout(params)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        ap = self.axi_params
        bb = ap.bytes_per_beat
        lb = _log2(bb)
        axi = self.axi
        start = self.start & ~self.busy

        # -- read stream ---------------------------------------------------------------------
        # Records wait for their beats: enough for every beat in flight plus the
        # vectors of one open burst.
        mv = max_vectors(p.lanes, bb)
        rd_rec_depth = self.read_buffer_beats + mv + 8
        m.submodules.rd_walk = rw = _Walker(lanes=p.lanes, beat_bytes=bb, read=True,
                                            record_depth=rd_rec_depth)
        m.d.comb += [rw.pattern.eq(self.config.rd), rw.start.eq(start)]
        m.submodules.rd_buf = rbuf = fifo.SyncFIFOBuffered(width=8 * bb,
                                                           depth=self.read_buffer_beats)
        m.submodules.rd_asm = ra = _ReadAssembler(lanes=p.lanes, beat_bytes=bb,
                                                  rec_layout=rw.rec_layout, params=p)
        wiring.connect(m, rw.records, ra.records)
        m.d.comb += ra.elem.eq(self.config.rd.elem)
        wiring.connect(m, ra.o, wiring.flipped(self.o_vec))
        m.d.comb += [
            ra.beats.valid.eq(rbuf.r_rdy),
            ra.beats.payload.eq(rbuf.r_data),
            rbuf.r_en.eq(ra.beats.ready),
        ]

        credits = Signal(range(self.read_buffer_beats + 1), init=self.read_buffer_beats)
        r_out = Signal(range(self.read_bursts + 1))
        ar_fire = axi.ar.valid & axi.ar.ready
        r_fire = axi.r.valid & axi.r.ready
        head = rw.bursts.payload
        m.d.comb += [
            axi.ar.valid.eq(rw.bursts.valid & (credits >= head.n) & (r_out < self.read_bursts)),
            axi.ar.payload.addr.eq(head.beat << lb),
            axi.ar.payload.len.eq(head.n - 1),
            axi.ar.payload.size.eq(ap.size),
            axi.ar.payload.burst.eq(BURST_INCR),
            axi.ar.payload.id.eq(0),
            rw.bursts.ready.eq(axi.ar.ready & axi.ar.valid),
            axi.r.ready.eq(rbuf.w_rdy),
            rbuf.w_en.eq(axi.r.valid),
            rbuf.w_data.eq(axi.r.payload.data),
        ]
        m.d.sync += [
            credits.eq(credits - Mux(ar_fire, head.n, 0) + rbuf.r_en),
            r_out.eq(r_out + ar_fire - (r_fire & axi.r.payload.last)),
        ]
        rd_done = rw.done & (rw.record_level == 0) & ~self.o_vec.valid

        # -- write stream --------------------------------------------------------------------
        m.submodules.wr_walk = ww = _Walker(lanes=p.lanes, beat_bytes=bb, read=False,
                                            record_depth=2 * mv)
        m.d.comb += [ww.pattern.eq(self.config.wr), ww.start.eq(start)]
        m.submodules.wr_pack = wp = _WritePacker(lanes=p.lanes, beat_bytes=bb,
                                                 rec_layout=ww.rec_layout, params=p)
        wiring.connect(m, ww.records, wp.records)
        m.d.comb += wp.elem.eq(self.config.wr.elem)
        wiring.connect(m, wiring.flipped(self.i_vec), wp.i)
        # A burst's address is issued only once all its W beats are buffered
        # here. The interconnect passes W data in the order it granted write
        # addresses (AXI4 has no write interleaving), so an address issued
        # ahead of its data would hold every other master's W until the
        # fabric produced that data; when the fabric is waiting on one of
        # those other writes (a kernel that writes two tensors through two
        # AGCUs, such as attention's P and l), that is a deadlock. The
        # walker's bursts go to the packer (their lengths, for W's `last`)
        # and to an address queue at once.
        # beats buffered for bursts whose AW is not issued yet (unclaimed) and
        # beats of issued bursts not sent yet (claimed)
        unclaimed = Signal(range(self.write_buffer_beats + 1))
        claimed = Signal(range(self.write_buffer_beats + 1))
        m.submodules.wr_lens = lens = fifo.SyncFIFOBuffered(width=8, depth=self.write_bursts)
        m.submodules.wr_awq = awq = fifo.SyncFIFOBuffered(
            width=Shape.cast(ww.bursts.payload.shape()).width, depth=self.write_bursts)
        wlayout = wp.w.payload.shape()
        m.submodules.wr_wbuf = wbuf = fifo.SyncFIFOBuffered(
            width=Shape.cast(wlayout).width, depth=self.write_buffer_beats)
        m.d.comb += [
            wp.lens.valid.eq(lens.r_rdy),
            wp.lens.payload.eq(lens.r_data),
            lens.r_en.eq(wp.lens.ready),
            wbuf.w_en.eq(wp.w.valid),
            wbuf.w_data.eq(wp.w.payload),
            wp.w.ready.eq(wbuf.w_rdy),
            # no W beat before its burst's AW (the interconnect routes W by
            # the order of granted AWs)
            axi.w.valid.eq(wbuf.r_rdy & (claimed != 0)),
            axi.w.payload.eq(wbuf.r_data),
            wbuf.r_en.eq(axi.w.ready & (claimed != 0)),
            ww.bursts.ready.eq(lens.w_rdy & awq.w_rdy),
            lens.w_en.eq(ww.bursts.valid & awq.w_rdy),
            lens.w_data.eq(ww.bursts.payload.n - 1),
            awq.w_en.eq(ww.bursts.valid & lens.w_rdy),
            awq.w_data.eq(ww.bursts.payload),
        ]

        w_out = Signal(range(self.write_bursts + 1))
        aw_fire = axi.aw.valid & axi.aw.ready
        b_fire = axi.b.valid & axi.b.ready
        whead = Signal(ww.bursts.payload.shape())
        m.d.comb += [
            whead.eq(awq.r_data),
            axi.aw.valid.eq(awq.r_rdy & (unclaimed >= whead.n) & (w_out < self.write_bursts)),
            axi.aw.payload.addr.eq(whead.beat << lb),
            axi.aw.payload.len.eq(whead.n - 1),
            axi.aw.payload.size.eq(ap.size),
            axi.aw.payload.burst.eq(BURST_INCR),
            axi.aw.payload.id.eq(0),
            awq.r_en.eq(aw_fire),
            axi.b.ready.eq(1),
        ]
        w_fire = axi.w.valid & axi.w.ready
        m.d.sync += [
            unclaimed.eq(unclaimed + (wbuf.w_en & wbuf.w_rdy) - Mux(aw_fire, whead.n, 0)),
            claimed.eq(claimed + Mux(aw_fire, whead.n, 0) - w_fire),
        ]
        m.d.sync += w_out.eq(w_out + aw_fire - b_fire)
        wr_done = (ww.done & (ww.record_level == 0) & wp.idle & (wbuf.level == 0)
                   & (ww.burst_level == 0) & ~awq.r_rdy & ~lens.r_rdy & (w_out == 0))

        # -- control and counters ------------------------------------------------------------
        with m.If(start):
            m.d.sync += [self.busy.eq(1), self.done.eq(0), self.read_bytes.eq(0),
                         self.write_bytes.eq(0)]
        with m.Elif(self.busy & rd_done & wr_done):
            m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        with m.If(~start):
            with m.If(r_fire):
                m.d.sync += self.read_bytes.eq(self.read_bytes + bb)
            with m.If(axi.w.valid & axi.w.ready):
                m.d.sync += self.write_bytes.eq(
                    self.write_bytes + sum(axi.w.payload.strb[k] for k in range(bb)))

        o_fire = self.o_vec.valid & self.o_vec.ready
        i_fire = self.i_vec.valid & self.i_vec.ready
        blocked = ((self.o_vec.valid & ~self.o_vec.ready) | (axi.ar.valid & ~axi.ar.ready)
                   | (axi.aw.valid & ~axi.aw.ready) | (axi.w.valid & ~axi.w.ready))
        active = self.busy & (o_fire | i_fire)
        m.d.comb += [
            self.perf_active.eq(active),
            self.perf_stalled.eq(self.busy & ~active & blocked),
            self.perf_starved.eq(self.busy & ~active & ~blocked),
        ]
        return m
