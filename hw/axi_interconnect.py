"""AXI4 interconnect: N masters share one slave (the DRAM port).

Address channels are arbitrated round-robin; the slave sees the master's
index as the transaction ID (each Tessera master issues in order under a
single ID, so its own ID bits are not needed). Read data and write responses
return to the master named by the ID. Write data follows the order in which
write addresses were granted (AXI4 has no write interleaving), through a
small FIFO of granted master indices.

Every output is registered by a :class:`~.links.Hop`, so valid never depends
on ready and no combinational path crosses the interconnect.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4Params, AXI4Signature
from .links import Hop

__all__ = ["AXI4Interconnect"]


class _RoundRobin(Elaboratable):
    """Grant one of `n` requests; the last winner has the lowest priority."""

    def __init__(self, n: int):
        self.n = n
        self.requests = Signal(n)
        self.grant = Signal(range(max(n, 2)))
        self.valid = Signal()
        self.advance = Signal()       # the granted request was served

    def elaborate(self, platform):
        m = Module()
        last = Signal(range(max(self.n, 2)), init=self.n - 1)
        # Scan from last+1 around the ring; the first request found wins.
        with m.Switch(last):
            for l in range(self.n):
                with m.Case(l):
                    order = [(l + 1 + k) % self.n for k in range(self.n)]
                    for idx in reversed(order):
                        with m.If(self.requests[idx]):
                            m.d.comb += self.grant.eq(idx)
        m.d.comb += self.valid.eq(self.requests.any())
        with m.If(self.advance):
            m.d.sync += last.eq(self.grant)
        return m


class AXI4Interconnect(wiring.Component):
    """``masters[i]`` (AXI4 slaves ports facing the masters) -> ``slave``.

    Parameters: `master_params` (the masters' AXI4Params), `n_masters`,
    `write_order_depth` (write bursts granted but whose data has not passed).
    """

    def __init__(self, master_params: AXI4Params, n_masters: int, *, write_order_depth: int = 4):
        if not isinstance(n_masters, int) or n_masters < 1:
            raise ValueError(f"n_masters must be a positive int, got {n_masters!r}")
        id_width = max(1, (n_masters - 1).bit_length())
        self.master_params = master_params
        self.slave_params = AXI4Params(addr_width=master_params.addr_width,
                                       data_width=master_params.data_width, id_width=id_width)
        self.n = n_masters
        self._depth = write_order_depth
        super().__init__({
            "masters": In(AXI4Signature(master_params)).array(n_masters),
            "slave": Out(AXI4Signature(self.slave_params)),
        })

    def _addr_channel(self, m, name, order_fifo=None):
        """Arbitrate AR or AW into a registered output; returns nothing."""
        sp = self.slave_params
        m.submodules[f"{name}_arb"] = arb = _RoundRobin(self.n)
        m.submodules[f"{name}_hop"] = hop = Hop(sp.addr_layout())
        chans = [getattr(mp, name) for mp in self.masters]
        m.d.comb += arb.requests.eq(Cat(c.valid for c in chans))
        can = hop.i.ready if order_fifo is None else hop.i.ready & order_fifo.w_rdy
        with m.Switch(arb.grant):
            for i, c in enumerate(chans):
                with m.Case(i):
                    m.d.comb += [
                        hop.i.payload.addr.eq(c.payload.addr),
                        hop.i.payload.len.eq(c.payload.len),
                        hop.i.payload.size.eq(c.payload.size),
                        hop.i.payload.burst.eq(c.payload.burst),
                        hop.i.payload.id.eq(i),
                        hop.i.valid.eq(c.valid & can),
                        c.ready.eq(can),
                    ]
        fire = hop.i.valid & hop.i.ready
        m.d.comb += arb.advance.eq(fire)
        if order_fifo is not None:
            m.d.comb += [order_fifo.w_en.eq(fire), order_fifo.w_data.eq(arb.grant)]
        wiring.connect(m, hop.o, wiring.flipped(getattr(self.slave, name)))

    def _response_channel(self, m, name, layout_fn):
        """Route R or B back to the master named by the ID, through Hops."""
        src = getattr(self.slave, name)
        ready = Signal(self.n)
        for i, mp in enumerate(self.masters):
            hop = Hop(layout_fn())
            m.submodules[f"{name}_hop{i}"] = hop
            sel = src.payload.id == i
            for field_name, _ in layout_fn():
                if field_name == "id":
                    m.d.comb += hop.i.payload.id.eq(0)
                else:
                    m.d.comb += getattr(hop.i.payload, field_name).eq(getattr(src.payload, field_name))
            m.d.comb += [hop.i.valid.eq(src.valid & sel), ready[i].eq(sel & hop.i.ready)]
            wiring.connect(m, hop.o, wiring.flipped(getattr(mp, name)))
        m.d.comb += src.ready.eq(ready.any())

    def elaborate(self, platform):
        m = Module()
        mp = self.master_params
        self._addr_channel(m, "ar")
        m.submodules.w_order = order = fifo.SyncFIFOBuffered(
            width=max(1, (self.n - 1).bit_length()), depth=self._depth)
        self._addr_channel(m, "aw", order_fifo=order)

        # W: from the master at the head of the write order, until wlast.
        m.submodules.w_hop = w_hop = Hop(mp.w_layout())
        with m.If(order.r_rdy):
            with m.Switch(order.r_data):
                for i, master in enumerate(self.masters):
                    with m.Case(i):
                        m.d.comb += [
                            w_hop.i.payload.eq(master.w.payload),
                            w_hop.i.valid.eq(master.w.valid),
                            master.w.ready.eq(w_hop.i.ready),
                        ]
        m.d.comb += order.r_en.eq(w_hop.i.valid & w_hop.i.ready & w_hop.i.payload.last)
        wiring.connect(m, w_hop.o, wiring.flipped(self.slave.w))

        self._response_channel(m, "r", mp.r_layout)
        self._response_channel(m, "b", mp.b_layout)
        return m
