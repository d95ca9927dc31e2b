"""The link layer: payload layouts of the three networks, the registered hop
and the unit input FIFO.

Plasticine (and SN40L) route three networks: vector (``lanes`` words per
transfer), scalar (one word) and control (1-bit tokens). Every link here is an
:class:`amaranth.lib.stream` interface whose payload is one of the layouts
below; every switch hop goes through a :class:`Hop`, which registers both
``valid``/``payload`` and ``ready`` so that no combinational path spans two
hops while a link still sustains one transfer per cycle.
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth import *
from amaranth.asserts import Initial
from amaranth.hdl import Assert, Assume
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import FabricParams

__all__ = ["NETWORKS", "vector_layout", "scalar_layout", "token_layout",
           "network_layout", "link_signature", "Hop", "StreamFIFO", "Counted", "flagged_counter",
           "ahead_flag", "bit_runs"]

#: The networks, in the order every table in Tessera lists them.
NETWORKS = ("vec", "scal", "ctrl")


def vector_layout(params: FabricParams) -> data.StructLayout:
    """A vector word: one ``word_width`` element per lane, plus end-of-group."""
    return data.StructLayout({
        "data": data.ArrayLayout(params.word_width, params.lanes),
        "last": 1,
    })


def scalar_layout(params: FabricParams) -> data.StructLayout:
    return data.StructLayout({"data": params.word_width, "last": 1})


def token_layout(params: FabricParams | None = None) -> data.StructLayout:
    """A control token. The transfer itself is the token; ``last`` marks the
    final token of an iteration space (done)."""
    return data.StructLayout({"last": 1})


def network_layout(params: FabricParams, network: str) -> data.StructLayout:
    if network == "vec":
        return vector_layout(params)
    if network == "scal":
        return scalar_layout(params)
    if network == "ctrl":
        return token_layout(params)
    raise ValueError(f"unknown network {network!r}; expected one of {NETWORKS}")


def link_signature(params: FabricParams, network: str) -> stream.Signature:
    return stream.Signature(network_layout(params, network))


class Hop(wiring.Component):
    """A registered link stage (a two-entry skid buffer).

    ``o.valid``/``o.payload`` and ``i.ready`` are driven only from registers,
    so the stage cuts every combinational path in both directions; with two
    entries it still accepts one transfer per cycle under continuous flow.

    The output register ``head`` loads either the input or the skid register
    ``tail``; ``tail`` only ever loads the input, and only when the output is
    stalled. So each payload bit is one 2:1 mux into a clock-enabled flop plus
    one clock-enabled flop (the enables are shared by all bits), rather than
    the 3:1 mux per register of a two-entry queue that shifts its entries.
    """

    def __init__(self, layout):
        self._layout = layout
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        head = Signal(self._layout)         # the output register (older word)
        tail = Signal(self._layout)         # the skid register (newer word)
        head_valid = Signal()
        tail_valid = Signal()
        count = Signal(range(3))            # words held (for the formal invariants)

        m.d.comb += [
            count.eq(head_valid + tail_valid),
            self.o.valid.eq(head_valid),
            self.o.payload.eq(head),
            self.i.ready.eq(~tail_valid),
        ]
        with m.If(~head_valid | self.o.ready):
            # The output register is free (or being emptied): refill it from the
            # skid register if that holds a word, else from the input.
            m.d.sync += [head.eq(Mux(tail_valid, tail, self.i.payload)),
                         head_valid.eq(tail_valid | self.i.valid),
                         tail_valid.eq(0)]
        with m.Elif(~tail_valid):
            # Output stalled with one word: a new word goes to the skid register.
            m.d.sync += [tail.eq(self.i.payload), tail_valid.eq(self.i.valid)]
        return m


class Counted(NamedTuple):
    """What :func:`flagged_counter` returns: the count and its registered flags."""
    count: Signal
    nz: Signal       # count != 0
    full: Signal     # count == limit
    many: Signal     # count >= 2


def flagged_counter(m: Module, name: str, limit: int, *, up, down, reset: int = 0,
                    load=None) -> Counted:
    """A 0..``limit`` up/down counter (a token count, an output's credits, a
    FIFO's level) with three registered flags: ``nz`` (count != 0), ``full``
    (count == ``limit``) and ``many`` (count >= 2). A decision that tests
    the flags starts at flops, with no adder or comparator in front of it;
    ``many`` lets a consumer compute ``nz`` one cycle ahead (:func:`ahead_flag`).
    ``up`` and ``down`` may both be 1 in a cycle; the caller must keep the
    count within 0..limit. ``load`` = ``(cond, value)`` replaces the count
    when ``cond`` (before up/down)."""
    count = Signal(range(limit + 1), name=name, init=reset)
    nz = Signal(name=f"{name}_nz", init=int(reset != 0))
    full = Signal(name=f"{name}_full", init=int(reset == limit))
    many = Signal(name=f"{name}_many", init=int(reset >= 2))

    def update():
        m.d.sync += count.eq(count + up - down)
        with m.If(up & ~down):
            m.d.sync += [nz.eq(1), full.eq(count == limit - 1), many.eq(nz)]
        with m.Elif(down & ~up):
            m.d.sync += [nz.eq(many), full.eq(0), many.eq(many & (count != 2))]

    if load is None:
        update()
    else:
        cond, value = load
        with m.If(cond):
            m.d.sync += [count.eq(value), nz.eq(value != 0), full.eq(value == limit),
                         many.eq(value >= 2)]
        with m.Else():
            update()
    return Counted(count, nz, full, many)


def ahead_flag(m: Module, name: str, *, nz, many, up, fire, take, need_fire, need_hold,
               load=None) -> Signal:
    """A registered ``~need | count != 0`` for a firing decision: whether a
    consumer that `need`s a counter's unit (a FIFO word, a token, a credit)
    may fire, computed one cycle ahead so that the decision is one flop per
    dependency, with the static enables folded in.

    The counter, whose registered flags ``nz`` and ``many`` are those of
    :func:`flagged_counter`, goes up on ``up`` and down when the consumer
    fires (``fire``) and ``take`` holds. Which of the two next values the
    flag loads is the last choice, made by ``fire``: ``need_fire`` and
    ``need_hold`` are ``need`` in the next cycle if the consumer fires or
    does not. ``load`` = ``(cond, value)`` sets the flag instead (the
    counter being loaded), in a cycle in which the consumer does not fire.
    The path from ``fire`` to the flag is that last choice alone; the rest
    does not depend on ``fire``."""
    if_fire = ~need_fire | Mux(take, Mux(up, nz, many), nz | up)
    if_hold = ~need_hold | nz | up
    if load is not None:
        if_hold = Mux(load[0], load[1], if_hold)
    flag = Signal(name=name, init=1)      # at reset the unit is unconfigured: no need
    nxt = Mux(fire, if_fire, if_hold)
    m.d.sync += flag.eq(nxt)
    return flag


def bit_runs(width, n):
    """The `n` runs of bits, as (lo, hi), into which a `width`-bit word is
    split among `n` copies of one control signal (place and route)."""
    return [(i * width // n, (i + 1) * width // n) for i in range(n)]


#: A registered StreamFIFO's head is split into slices of about this many
#: bits, each loaded by its own enable (:meth:`StreamFIFO._buffered`).
HEAD_SLICE_BITS = 32


class StreamFIFO(wiring.Component):
    """A stream FIFO: a buffered synchronous FIFO of ``depth`` entries whose
    read side is registered (first-word fall-through). It buffers every unit
    input (``fifo_depth`` entries) and is each PCU output's queue
    (``PCU.out_depth`` entries, drained against credits).

    Registered, it is Amaranth's SyncFIFOBuffered cycle for cycle (a ring
    of ``depth - 1`` words and a head register, :meth:`_buffered`; at depth 1
    SyncFIFOBuffered itself). Depth 3 or more sustains one word per cycle; at
    depth 1 or 2 it moves one word every other cycle (proved in
    tests/formal), which is why FabricParams requires fifo_depth >= 3.

    With ``registered=False`` the head is read from the storage
    combinationally (as in Amaranth's SyncFIFO: on ECP5 distributed RAM,
    whose read address is the registered read pointer). A pop then drives only the
    pointer and the level, not a load enable on every bit of the head: the
    PCU's vector and scalar inputs use it, so that its firing decision (which pops them)
    fans out to a few flops (docs/area.md, "Session 8"). A word is readable the cycle after it
    is written (one cycle earlier than registered), and depth 2 already
    sustains one word per cycle.

    ``read_copies`` (with ``registered=False``): the storage is split into
    that many slices of the payload's bits, each read through its own copy
    of the read pointer (flops named ``r_ptr{i}_rep``, which synthesis keeps
    apart), so that no pointer flop drives the read address of every
    distributed-RAM cell. The streams are the same as with one pointer.

    ``level`` is the number of words held and ``many`` is ``level >= 2``
    (a registered flag in the ring, so that a consumer can compute its
    firing flag a cycle ahead: :func:`ahead_flag`)."""

    def __init__(self, layout, depth: int, *, registered: bool = True, read_copies: int = 1):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"StreamFIFO depth must be a positive int, got {depth!r}")
        if not isinstance(read_copies, int) or read_copies < 1 or (registered and read_copies > 1):
            raise ValueError(f"StreamFIFO read_copies must be a positive int, and 1 when "
                             f"registered, got {read_copies!r}")
        self._layout = layout
        self._depth = depth
        self._registered = bool(registered)
        self._read_copies = read_copies
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "level": Out(range(depth + 1)),
            "many": Out(1),
        })

    @property
    def registered(self) -> bool:
        """True if the head is a register (SyncFIFOBuffered), False if it is
        read combinationally from the ring (SyncFIFO)."""
        return self._registered

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._layout).width
        if not self._registered:
            self._ring(m, width, platform)
            return m
        if self._depth >= 2:
            self._buffered(m, width, platform)
            return m
        # depth 1: SyncFIFOBuffered's own single register (alternating)
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=width, depth=self._depth)
        m.d.comb += [
            q.w_data.eq(Value.cast(self.i.payload)),
            q.w_en.eq(self.i.valid),
            self.i.ready.eq(q.w_rdy),
            self.o.payload.eq(q.r_data),
            self.o.valid.eq(q.r_rdy),
            q.r_en.eq(self.o.ready),
            self.level.eq(q.level),
            self.many.eq(q.level >= 2),
        ]
        return m

    def _buffered(self, m, width, platform):
        """Amaranth's SyncFIFOBuffered, cycle for cycle (tests/unit/test_links.py
        compares them): a ring of ``depth - 1`` words (:meth:`_ring`, read
        combinationally) and the head register, which loads the ring's head
        when it is empty or being read (``r_rdy`` marks it full).

        Unlike SyncFIFOBuffered, whose ring level is a counter compared
        with 0, the ring's "not empty" is a flop, so the head's load enable
        is one LUT after flops; and the head is split into slices of about
        32 bits, each with its own copy of ``r_rdy`` (``r_rdy{i}_rep``) and
        so its own enable: no net enables every bit of a wide head."""
        m.submodules.ring = ring = StreamFIFO(self._layout, self._depth - 1, registered=False)
        n = max(1, width // HEAD_SLICE_BITS)
        r_rdys = [Signal(name="r_rdy")] + [Signal(name=f"r_rdy{i}_rep") for i in range(1, n)]
        r_rdy = r_rdys[0]
        m.d.comb += [
            ring.i.payload.eq(self.i.payload),
            ring.i.valid.eq(self.i.valid),
            self.i.ready.eq(ring.i.ready),
            ring.o.ready.eq(~r_rdy | self.o.ready),
            self.o.valid.eq(r_rdy),
            self.level.eq(ring.level + r_rdy),
            self.many.eq(self.level >= 2),
        ]
        data_in = Value.cast(ring.o.payload)
        head = []
        for i, (r, (lo, hi)) in enumerate(zip(r_rdys, bit_runs(width, n))):
            load = Signal(name=f"head_load{i}")
            m.d.comb += load.eq(ring.o.valid & (~r | self.o.ready))
            with m.If(load):
                m.d.sync += r.eq(1)
            with m.Elif(self.o.ready):
                m.d.sync += r.eq(0)
            part = Signal(hi - lo, name=f"head{i}")
            with m.If(load):
                m.d.sync += part.eq(data_in[lo:hi])
            head.append(part)
        m.d.comb += self.o.payload.eq(Cat(*head))
        if platform == "formal":
            inv = Cat(*(r == r_rdy for r in r_rdys)).all()
            with m.If(Initial()):
                m.d.comb += Assume(inv)
            with m.Else():
                m.d.comb += Assert(inv)

    def _ring(self, m, width, platform):
        """Amaranth's SyncFIFO, cycle for cycle (tests/unit/test_links.py
        compares them): a ring read combinationally at the read pointer,
        with the storage in `read_copies` slices, each read at its own copy
        of the pointer."""
        depth, n = self._depth, min(self._read_copies, width)
        w_ptr = Signal(range(depth), name="w_ptr")
        r_ptrs = [Signal(range(depth), name=f"r_ptr{i}_rep" if n > 1 else "r_ptr")
                  for i in range(n)]
        push = Signal()
        pop = Signal()
        # The level with registered "not empty" and "full" flags: valid and
        # ready come straight from flops (a decision that tests them, such as
        # a PCU's firing, has no compare of the level in front of it).
        level, nonempty, full, many = flagged_counter(m, "ring_level", depth, up=push, down=pop)
        m.d.comb += [
            self.many.eq(many),
            self.i.ready.eq(~full),
            self.o.valid.eq(nonempty),
            push.eq(self.i.valid & self.i.ready),
            pop.eq(self.o.valid & self.o.ready),
            self.level.eq(level),
        ]

        def advance(ptr):
            return Mux(ptr == depth - 1, 0, ptr + 1)

        with m.If(push):
            m.d.sync += w_ptr.eq(advance(w_ptr))
        with m.If(pop):
            m.d.sync += [r.eq(advance(r)) for r in r_ptrs]
        if platform == "formal":
            # The ring's invariants, as SyncFIFO states its own (assumed in the
            # initial state, asserted after it): what a proof's induction needs.
            r0 = r_ptrs[0]
            dist = Mux(w_ptr >= r0, w_ptr - r0, depth + w_ptr - r0)
            inv = ((w_ptr < depth) & (r0 < depth)
                   & Mux(w_ptr == r0, (level == 0) | (level == depth), level == dist)
                   & (nonempty == (level != 0)) & (full == (level == depth))
                   & (many == (level >= 2)))
            for r in r_ptrs[1:]:
                inv = inv & (r == r0)
            with m.If(Initial()):
                m.d.comb += Assume(inv)
            with m.Else():
                m.d.comb += Assert(inv)
        data_in = Value.cast(self.i.payload)
        out = []
        for i, (r_ptr, (lo, hi)) in enumerate(zip(r_ptrs, bit_runs(width, n))):
            mem = memory.Memory(shape=hi - lo, depth=depth, init=[])
            m.submodules[f"storage{i}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(domain="comb")
            m.d.comb += [wp.addr.eq(w_ptr), wp.data.eq(data_in[lo:hi]), wp.en.eq(push),
                         rp.addr.eq(r_ptr)]
            out.append(rp.data)
        m.d.comb += self.o.payload.eq(Cat(*out))
