"""The switch: per output port and network, a configured input select.

A switch has, on each of the three networks, inputs from its four neighbours
(``tracks`` links per side) and from its unit's outputs, and outputs to its
four neighbours and to its unit's inputs. Each output is configured with
``en`` and ``sel`` (which input feeds it). Several outputs may select the
same input: that is multicast, and the input is consumed only once every
selected output has taken the word (an eager fork: each output remembers
that it has already taken the current word, so ``valid`` never depends on
``ready``). Every output is registered by a :class:`~.links.Hop`.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .links import NETWORKS, Hop, network_layout
from .params import FabricParams

__all__ = ["select_layout", "mux_tree", "Crossbar", "Switch", "SIDES", "switch_ports", "switch_config_layout"]

#: Sides of a switch in the order every port list uses.
SIDES = ("N", "E", "S", "W")


def select_layout(n_inputs: int) -> data.StructLayout:
    """Configuration of one output: enable plus the index of its input."""
    return data.StructLayout({"en": 1, "sel": range(max(n_inputs, 2))})


def switch_ports(params: FabricParams, network: str) -> tuple[list, list]:
    """Names of the inputs and outputs of a switch on `network`.

    A name is ``(side, index)``: side is one of SIDES or ``"U"`` (the unit).
    Inputs from the unit are its outputs and vice versa.
    """
    tracks = {"vec": params.vec_tracks, "scal": params.scal_tracks,
              "ctrl": params.ctrl_tracks}[network]
    unit_out = {"vec": params.unit_vec_out, "scal": params.unit_scal_out,
                "ctrl": params.unit_ctrl_out}[network]
    unit_in = {"vec": params.unit_vec_in, "scal": params.unit_scal_in,
               "ctrl": params.unit_ctrl_in}[network]
    sides = [(side, t) for side in SIDES for t in range(tracks)]
    inputs = sides + [("U", k) for k in range(unit_out)]
    outputs = sides + [("U", k) for k in range(unit_in)]
    return inputs, outputs


def switch_config_layout(params: FabricParams) -> data.StructLayout:
    fields = {}
    for net in NETWORKS:
        inputs, outputs = switch_ports(params, net)
        fields[net] = data.ArrayLayout(select_layout(len(inputs)), len(outputs))
    return data.StructLayout(fields)


def mux_tree(sel, options):
    """``options[sel]`` as a binary tree of 2:1 muxes on the bits of `sel`
    (codes past the end give 0). Yosys/ABC map that to fewer ECP5 LUTs than
    the ``$pmux`` that a ``Switch`` on `sel` becomes (the same construction as
    the PCU's operand muxes)."""
    sel = Value.cast(sel)
    opts = [Value.cast(v) for v in options]
    width = max(len(v) for v in opts)
    n = 1 << len(sel)
    opts = (opts + [Const(0, width)] * n)[:n]
    for bit in range(len(sel)):
        opts = [Mux(sel[bit], opts[i + 1], opts[i]) for i in range(0, len(opts), 2)]
    return opts[0]


class Crossbar(wiring.Component):
    """One network of a switch: ``n_in`` inputs, ``n_out`` registered outputs,
    each output selecting one input (or none), with multicast."""

    def __init__(self, layout, n_inputs: int, n_outputs: int, *, registered=None):
        if n_inputs < 1 or n_outputs < 1:
            raise ValueError(f"Crossbar needs at least one input and one output, "
                             f"got {n_inputs} inputs and {n_outputs} outputs")
        if registered is None:
            registered = [True] * n_outputs
        if len(registered) != n_outputs:
            raise ValueError(f"Crossbar registered= needs {n_outputs} entries, got {len(registered)}")
        self._layout = layout
        self._n_in = n_inputs
        self._n_out = n_outputs
        self._registered = [bool(r) for r in registered]
        super().__init__({
            "i": In(stream.Signature(layout)).array(n_inputs),
            "o": Out(stream.Signature(layout)).array(n_outputs),
            "config": In(data.ArrayLayout(select_layout(n_inputs), n_outputs)),
        })

    def elaborate(self, platform):
        m = Module()
        hops = []
        for k in range(self._n_out):
            if self._registered[k]:
                hop = Hop(self._layout)
                m.submodules[f"hop{k}"] = hop
                wiring.connect(m, hop.o, wiring.flipped(self.o[k]))
            else:
                # Drive the output port directly; `.i` is the port itself.
                hop = SimpleNamespace(i=self.o[k])
            hops.append(hop)

        # taken[k]: output k already passed on the word now at its input's head.
        taken = Signal(self._n_out)
        src_valid = Signal(self._n_out)
        for k, hop in enumerate(hops):
            cfg = self.config[k]
            m.d.comb += [
                src_valid[k].eq(mux_tree(cfg.sel, [self.i[j].valid for j in range(self._n_in)])),
                hop.i.payload.eq(mux_tree(cfg.sel, [self.i[j].payload.as_value()
                                                    for j in range(self._n_in)])),
                hop.i.valid.eq(cfg.en & src_valid[k] & ~taken[k]),
            ]

        # Input j is consumed when every output selecting it has taken or is
        # taking the word. An input that no output selects is never consumed.
        consumed = Signal(self._n_in)
        for j in range(self._n_in):
            selected = [self.config[k].en & (self.config[k].sel == j) for k in range(self._n_out)]
            all_done = Const(1)
            for k in range(self._n_out):
                all_done = all_done & (~selected[k] | taken[k] | hops[k].i.ready)
            m.d.comb += [
                self.i[j].ready.eq(Cat(*selected).any() & all_done),
                consumed[j].eq(self.i[j].valid & self.i[j].ready),
            ]

        for k, hop in enumerate(hops):
            cfg = self.config[k]
            src_consumed = Signal(name=f"src_consumed{k}")
            m.d.comb += src_consumed.eq(consumed.bit_select(cfg.sel, 1))
            with m.If(src_consumed | ~cfg.en):
                m.d.sync += taken[k].eq(0)
            with m.Elif(hop.i.valid & hop.i.ready):
                m.d.sync += taken[k].eq(1)
        return m


class Switch(wiring.Component):
    """A tile's switch: one :class:`Crossbar` per network.

    Ports are arrays in the order of :func:`switch_ports`: ``i_vec[j]`` is the
    j-th vector input, ``o_vec[k]`` the k-th vector output, and so on.
    """

    def __init__(self, params: FabricParams):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params
        members = {"config": In(switch_config_layout(params))}
        for net in NETWORKS:
            inputs, outputs = switch_ports(params, net)
            sig = stream.Signature(network_layout(params, net))
            members[f"i_{net}"] = In(sig).array(len(inputs))
            members[f"o_{net}"] = Out(sig).array(len(outputs))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for net in NETWORKS:
            inputs, outputs = switch_ports(self.params, net)
            xbar = Crossbar(network_layout(self.params, net), len(inputs), len(outputs),
                            registered=[side != "U" for side, _ in outputs])
            m.submodules[net] = xbar
            m.d.comb += xbar.config.eq(getattr(self.config, net))
            for j in range(len(inputs)):
                wiring.connect(m, wiring.flipped(getattr(self, f"i_{net}")[j]), xbar.i[j])
            for k in range(len(outputs)):
                wiring.connect(m, xbar.o[k], wiring.flipped(getattr(self, f"o_{net}")[k]))
        return m
