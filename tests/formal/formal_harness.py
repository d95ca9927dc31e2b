"""Formal harnesses for the link layer and the crossbar.

Every harness drives the streams of its design under test with arbitrary,
solver-chosen traffic (``AnySeq`` valid and ready every cycle) and states its
properties as Amaranth ``Assert``/``Assume`` statements:

* Each input is driven by a producer that obeys the stream rule (an
  assumption: ``valid``, once asserted, is held with a stable payload until
  the transfer) and that sends the sequence numbers ``0, 1, 2, ...`` (mod
  ``2**width``) as its payloads. The designs only move payloads around, so this
  loses no generality, and it makes loss, duplication and reordering visible:
  an output must show, whenever it is valid, exactly the number of transfers
  it has made so far. Occupancy bounds (below ``2**width``) rule out aliasing.
* Each output is checked against the stream rule (``valid`` held with a
  stable payload until the transfer) and against that sequence.
* Design-specific properties: capacity, registered ``valid``/``ready``,
  throughput under continuous flow.

Properties whose names start with ``inv.`` are not part of the specification:
they are invariants over the design's internal registers that make the
k-induction step go through (without them, an unreachable state such as a
full buffer holding the wrong word can persist for any number of cycles while
the output is stalled). A harness built with ``strengthen=False`` leaves them
out; its base case is then exactly a bounded check of the specification.

The harness's sync domain is reset-less: registers start from their ``init``
values, which is the initial state SymbiYosys uses for the base case.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from amaranth import *
from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Cover, Fragment
from amaranth.hdl._mem import MemoryInstance
from amaranth.lib import data

from tessera.hw.links import Hop, StreamFIFO
from tessera.hw.switch import Crossbar

__all__ = ["LAYOUT", "Harness", "HopHarness", "FIFOHarness", "CrossbarHarness",
           "internal_signals"]

#: A small payload (5 bits) keeps the proofs fast; its 32 sequence numbers are
#: far more than any of the designs can hold, so the counters never alias.
LAYOUT = data.StructLayout({"data": 4, "last": 1})


def internal_signals(fragment: Fragment, *names: str) -> list[Signal]:
    """The signals called `names` used by the statements of `fragment` (not
    of its subfragments). Raises if one is missing or ambiguous: the
    strengthening invariants name the design's registers, and must be
    revisited when those change."""
    found: dict[str, dict[int, Signal]] = {}
    for stmts in fragment.statements.values():
        for stmt in stmts:
            for sig in (*stmt._lhs_signals(), *stmt._rhs_signals()):
                found.setdefault(sig.name, {})[id(sig)] = sig
    result = []
    for name in names:
        sigs = list(found.get(name, {}).values())
        if len(sigs) != 1:
            raise LookupError(
                f"expected exactly one signal {name!r} in {fragment.origins or fragment!r}, "
                f"found {len(sigs)}; the formal harness's invariants need updating")
        result.append(sigs[0])
    return result


@dataclass
class Producer:
    """The harness's view of a DUT input driven by an assumed producer."""
    valid: Value
    ready: Value
    sent: Signal        # transfers so far, mod 2**width
    waiting: Signal     # the producer offered a word last cycle that was not taken

    @property
    def fire(self):
        return self.valid & self.ready


@dataclass
class Consumer:
    """The harness's view of a DUT output drained by an arbitrary consumer."""
    valid: Value
    ready: Value
    payload: Value
    got: Signal         # transfers so far, mod 2**width

    @property
    def fire(self):
        return self.valid & self.ready


class Harness(Elaboratable):
    """Common machinery: the clock domain, named properties, producers,
    consumers and history registers."""

    def __init__(self, *, strengthen: bool = True):
        self.strengthen = strengthen
        self.sync = ClockDomain("sync", reset_less=True)
        #: (source file, line) of each Assert -> names of the properties there.
        self.properties: dict[tuple[str, int], set[str]] = {}

    @property
    def ports(self):
        """Top-level ports for :func:`tessera.sim.formal.run_sby`."""
        return [self.sync.clk]

    def names_at(self, lines) -> set[str]:
        """Property names of the Asserts at `lines` ((file, line) pairs)."""
        names = set()
        for file, line in lines:
            names |= self.properties.get((os.path.normpath(file), line), set())
        return names

    # -- properties ----------------------------------------------------------

    def check(self, m, name: str, cond):
        """Assert `cond` (in the current ``If`` context of `m`) as property `name`."""
        if name.startswith("inv.") and not self.strengthen:
            return
        stmt = Assert(cond, name, src_loc_at=1)
        file, line = stmt.src_loc
        self.properties.setdefault((os.path.normpath(file), line), set()).add(name)
        m.d.comb += stmt

    def cover(self, m, name: str, cond):
        """Cover `cond` (checked by ``mode cover``; ignored by ``mode prove``).
        Reaching each cover shows the assumptions leave room for the
        interesting behaviour, so the proofs are not vacuous."""
        stmt = Cover(cond, name, src_loc_at=1)
        file, line = stmt.src_loc
        self.properties.setdefault((os.path.normpath(file), line), set()).add(name)
        m.d.comb += stmt

    def history(self, m, cond, cycles: int, name: str):
        """True when `cond` was true in each of the previous `cycles` cycles."""
        if cycles == 0:
            return C(1, 1)
        hist = Signal(cycles, name=f"{name}_hist")
        m.d.sync += hist.eq(Cat(cond, hist[:-1]))
        return hist.all()

    # -- streams -------------------------------------------------------------

    def producer(self, m, port, name: str) -> Producer:
        """Drive the input stream `port` of the DUT: valid whenever the solver
        likes, held until accepted; payloads are the sequence 0, 1, 2, ..."""
        payload_port = Value.cast(port.payload)
        width = len(payload_port)
        valid = AnySeq(1)
        payload = AnySeq(width)
        sent = Signal(width, name=f"{name}_sent")
        waiting = Signal(name=f"{name}_waiting")
        last = Signal(width, name=f"{name}_last")
        m.d.comb += [
            port.valid.eq(valid),
            payload_port.eq(payload),
            Assume(payload == sent),
        ]
        with m.If(waiting):                         # the stream rule, as an assumption
            m.d.comb += Assume(valid & (payload == last))
        m.d.sync += [
            waiting.eq(valid & ~port.ready),
            last.eq(payload),
        ]
        with m.If(valid & port.ready):
            m.d.sync += sent.eq(sent + 1)
        return Producer(valid=valid, ready=port.ready, sent=sent, waiting=waiting)

    def consumer(self, m, port, name: str) -> Consumer:
        """Drain the output stream `port` of the DUT with arbitrary ready and
        check it: the stream rule, and the exact sequence 0, 1, 2, ..."""
        payload = Value.cast(port.payload)
        width = len(payload)
        ready = AnySeq(1)
        got = Signal(width, name=f"{name}_got")
        stalled = Signal(name=f"{name}_stalled")
        last = Signal(width, name=f"{name}_last")
        m.d.comb += port.ready.eq(ready)
        with m.If(stalled):
            self.check(m, "stream.hold", port.valid & (payload == last))
        with m.If(port.valid):
            self.check(m, "stream.sequence", payload == got)
        m.d.sync += [
            stalled.eq(port.valid & ~ready),
            last.eq(payload),
        ]
        with m.If(port.valid & ready):
            m.d.sync += got.eq(got + 1)
        return Consumer(valid=port.valid, ready=ready, payload=payload, got=got)

    def _top(self):
        m = Module()
        m.domains.sync = self.sync
        return m


def _mod(value, width):
    return value[:width]


class HopHarness(Harness):
    """:class:`~tessera.hw.links.Hop`: a two-entry queue whose ``valid`` and
    ``ready`` are functions of its occupancy alone (hence registered), with
    one transfer per cycle under continuous flow."""

    def __init__(self, hop: Hop | None = None, **kwargs):
        super().__init__(**kwargs)
        self.dut = hop if hop is not None else Hop(LAYOUT)

    def elaborate(self, platform):
        m = self._top()
        frag = Fragment.get(self.dut, "formal")
        m.submodules.dut = frag
        src = self.producer(m, self.dut.i, "i")
        snk = self.consumer(m, self.dut.o, "o")
        width = len(src.sent)

        occ = Signal(width)         # words inside the hop
        m.d.comb += occ.eq(_mod(src.sent - snk.got, width))
        self.check(m, "hop.capacity", occ <= 2)
        # valid/ready equal functions of the occupancy, a register of the
        # harness: so neither depends combinationally on the other side.
        self.check(m, "hop.valid_registered", snk.valid == (occ != 0))
        self.check(m, "hop.ready_registered", src.ready == (occ != 2))
        # Continuous flow: after one cycle of valid input and ready output,
        # a word goes in and a word comes out every cycle.
        flow = src.valid & snk.ready
        with m.If(flow & self.history(m, flow, 1, "flow")):
            self.check(m, "hop.throughput", src.fire & snk.fire)
        self.cover(m, "hop.pop_when_full", (occ == 2) & snk.fire & src.valid)
        self.cover(m, "hop.streaming",
                   src.fire & snk.fire & self.history(m, src.fire & snk.fire, 3, "streaming"))

        if self.strengthen:
            count, tail = internal_signals(frag, "count", "tail")
            self.check(m, "inv.count", count == occ)
            with m.If(count == 2):
                self.check(m, "inv.tail", Value.cast(tail) == _mod(snk.got + 1, width))
        return m


class FIFOHarness(Harness):
    """:class:`~tessera.hw.links.StreamFIFO` of `depth`: a queue of `depth`
    words whose ``level`` is its occupancy, which accepts whenever it is not
    full and whose output is valid at most one cycle after a word is inside."""

    def __init__(self, depth: int, fifo: StreamFIFO | None = None, *,
                 throughput: bool = True, ready_unless_full: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.throughput = throughput
        self.ready_unless_full = ready_unless_full
        self.dut = fifo if fifo is not None else StreamFIFO(LAYOUT, depth)

    def elaborate(self, platform):
        m = self._top()
        # platform "formal" also turns on SyncFIFO(Buffered)'s own invariants
        # on its pointers and level.
        frag = Fragment.get(self.dut, "formal")
        src = self.producer(m, self.dut.i, "i")
        snk = self.consumer(m, self.dut.o, "o")
        width = len(src.sent)
        depth = self.depth

        occ = Signal(width)
        m.d.comb += occ.eq(_mod(src.sent - snk.got, width))
        self.check(m, "fifo.capacity", occ <= depth)
        self.check(m, "fifo.level", self.dut.level == occ)
        with m.If(occ == 0):
            self.check(m, "fifo.ready_when_empty", src.ready)
        if self.ready_unless_full:
            self.check(m, "fifo.ready_unless_full", src.ready == (occ != depth))
        # A word inside the FIFO reaches the output within one cycle.
        hidden = (occ != 0) & ~snk.valid
        self.check(m, "fifo.latency", ~(hidden & self.history(m, hidden, 1, "hidden")))
        if self.throughput:
            flow = src.valid & snk.ready
            with m.If(flow & self.history(m, flow, 2, "flow")):
                self.check(m, "fifo.throughput", src.fire & snk.fire)
        self.cover(m, "fifo.full", (occ == depth) & src.valid)
        self.cover(m, "fifo.refilled", (occ == depth) & (snk.got == depth))

        if self.strengthen and depth >= 2:
            self._strengthen(m, frag, snk, width)
        m.submodules.dut = frag
        return m

    def _strengthen(self, m, frag, snk, width):
        # registered (StreamFIFO._buffered, as SyncFIFOBuffered): a ring of
        # depth - 1 entries (`ring`, its storage `storage0`), read into the head
        # register (r_rdy marks it full). registered=False (StreamFIFO's own
        # ring, as Amaranth's SyncFIFO): the ring is all `depth` entries in
        # `storage0` and its head is the output.
        if self.dut.registered:
            ring = frag.find_subfragment("ring")
            (r_rdy,) = internal_signals(frag, "r_rdy")
            inner = self.depth - 1
        else:
            ring, r_rdy, inner = frag, C(0, 1), self.depth
        produce, consume, inner_level = internal_signals(ring, "w_ptr", "r_ptr", "ring_level")
        storage = ring.find_subfragment("storage0")
        assert isinstance(storage, MemoryInstance), storage
        addr_width = len(produce)
        # Comb read ports on the memory, one per row, for the invariants.
        rows = []
        for a in range(inner):
            row = Signal(width, name=f"storage_row{a}")
            storage.read_port(domain="comb", addr=C(a, addr_width), data=row,
                              en=C(1, 1), transparent_for=())
            rows.append(row)
        # The n-th word of the ring is the (got + r_rdy + n)-th of the stream.
        for n in range(inner):
            addr = Signal(range(inner), name=f"ring_addr{n}")
            m.d.comb += addr.eq(Mux(consume + n >= inner, consume + n - inner, consume + n))
            row = Array(rows)[addr]
            with m.If(inner_level > n):
                self.check(m, "inv.ring", row == _mod(snk.got + r_rdy + n, width))


class CrossbarHarness(Harness):
    """:class:`~tessera.hw.switch.Crossbar` under a constant configuration,
    chosen by the solver (``config=None``) or given as one ``(en, sel)`` per
    output. Every output that selects a valid input passes on exactly the
    sequence of that input (so multicast outputs each see every word); an
    output that selects nothing stays idle; an input that no output selects is
    never consumed. Under continuous flow (input valid, every output selecting
    it ready) the input transfers every cycle after the first, and each of its
    outputs every cycle after OUTPUT_WARMUP."""

    #: Cycles of continuous flow after which every selecting output transfers.
    #: 3 is the least that holds: a multicast output that took a word early
    #: and drained its hop waits for its sibling, then refills (2 fails).
    OUTPUT_WARMUP = 3

    def __init__(self, n_inputs: int = 3, n_outputs: int = 3, config=None,
                 crossbar: Crossbar | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_in, self.n_out = n_inputs, n_outputs
        self.config = config
        self.dut = crossbar if crossbar is not None else Crossbar(LAYOUT, n_inputs, n_outputs)

    def elaborate(self, platform):
        m = self._top()
        frag = Fragment.get(self.dut, "formal")
        m.submodules.dut = frag
        n_in, n_out, dut = self.n_in, self.n_out, self.dut

        cfg_width = len(Value.cast(dut.config))
        if self.config is None:
            m.d.comb += dut.config.eq(AnyConst(cfg_width))
        else:
            m.d.comb += dut.config.eq(dut.config.shape().const(
                [{"en": en, "sel": sel} for en, sel in self.config]))

        srcs = [self.producer(m, dut.i[j], f"i{j}") for j in range(n_in)]
        snks = [self.consumer(m, dut.o[k], f"o{k}") for k in range(n_out)]
        width = len(srcs[0].sent)
        en = [dut.config[k].en for k in range(n_out)]
        sel = [dut.config[k].sel for k in range(n_out)]
        picks = [[en[k] & (sel[k] == j) for j in range(n_in)] for k in range(n_out)]

        if self.strengthen:
            taken, = internal_signals(frag, "taken")
            hop_regs = [internal_signals(frag.find_subfragment(f"hop{k}"), "count", "tail")
                        for k in range(n_out)]

        for k, snk in enumerate(snks):
            routed = Signal(name=f"routed{k}")
            sent = Signal(width, name=f"o{k}_src_sent")
            waiting = Signal(name=f"o{k}_src_waiting")
            m.d.comb += routed.eq(Cat(picks[k]).any())
            for j in range(n_in):
                with m.If(picks[k][j]):
                    m.d.comb += [sent.eq(srcs[j].sent), waiting.eq(srcs[j].waiting)]
            with m.If(routed):
                # The output is at most one word ahead of its input (the word
                # it took while another multicast output has not yet) and at
                # most two behind (its hop). Rules out words from nowhere.
                self.check(m, "xbar.lag", _mod(sent + 1 - snk.got, width) <= 3)
                if self.strengthen:
                    count, tail = hop_regs[k]
                    self.check(m, "inv.pipeline",
                               _mod(snk.got + count, width) == _mod(sent + taken[k], width))
                    self.check(m, "inv.count", count <= 2)
                    with m.If(count == 2):
                        self.check(m, "inv.tail", Value.cast(tail) == _mod(snk.got + 1, width))
                    with m.If(taken[k]):
                        self.check(m, "inv.taken_waits", waiting)
            with m.Else():
                self.check(m, "xbar.unrouted_idle", ~snk.valid)
                if self.strengthen:
                    count, tail = hop_regs[k]
                    self.check(m, "inv.unrouted_empty", (count == 0) & ~taken[k])

        # Multicast with skew plus another route at the same time.
        for k1 in range(n_out):
            for k2 in range(k1 + 1, n_out):
                same = Cat(picks[k1][j] & picks[k2][j] for j in range(n_in)).any()
                self.cover(m, "xbar.multicast",
                           same & (snks[k1].got == 3) & (snks[k2].got == 1))
        if n_out >= 3:
            shared = Cat(picks[0][j] & picks[1][j] & ~picks[2][j] for j in range(n_in)).any()
            self.cover(m, "xbar.multicast_and_unicast",
                       shared & (snks[0].got == 2) & (snks[1].got == 2) & (snks[2].got == 2))

        for j, src in enumerate(srcs):
            readers = range(n_out)
            selected = Cat(picks[k][j] for k in readers).any()
            with m.If(~selected):
                self.check(m, "xbar.unselected_held", ~src.ready)
            # Continuous flow on input j: it is valid and every output that
            # selects it is ready.
            flow = Signal(name=f"flow{j}")
            m.d.comb += flow.eq(selected & src.valid &
                                Cat(~picks[k][j] | snks[k].ready for k in readers).all())
            with m.If(flow & self.history(m, flow, 1, f"flow{j}_in")):
                self.check(m, "xbar.input_throughput", src.fire)
            warm = flow & self.history(m, flow, self.OUTPUT_WARMUP, f"flow{j}_out")
            for k in readers:
                with m.If(warm & picks[k][j]):
                    self.check(m, "xbar.output_throughput", snks[k].fire)
        return m
