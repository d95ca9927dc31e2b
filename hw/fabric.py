"""The fabric: a grid of tiles (switch + unit slot) with edge ports, generated
from :class:`~.topology.Topology`, configured over one config bus."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import CONFIG_BUS_STAGES, ConfigBusSignature, ConfigRegister
from .links import NETWORKS, network_layout
from .params import FabricParams
from .switch import Switch
from .topology import OPPOSITE, Topology, unit_class_for

__all__ = ["Fabric"]


#: Register stages between the loader's config bus and the configuration
#: registers' logic: the fabric's register, then each config unit's own.
BUS_STAGES = 1 + CONFIG_BUS_STAGES


def _delayed(m, value, stages: int, name: str):
    for k in range(stages):
        r = Signal.like(value, name=f"{name}_d{k}")
        m.d.sync += r.eq(value)
        value = r
    return value


def after_the_bus(m, value, name: str):
    """`value` (e.g. the loader's end-of-bitstream strobe) delayed as the
    config bus is, so that it is seen when a commit sent with it has reached
    the active configurations."""
    return _delayed(m, value, BUS_STAGES, name)


def load_done_flag(m, start, loader_ended):
    """The ``load_done`` level of a top: cleared by `start` (a load begins),
    set when the loader has ended that bitstream and its commit (if any) has
    reached the units, past the config bus's registers. Returns the flag and
    the delayed end strobe (:func:`after_the_bus`)."""
    ended = after_the_bus(m, loader_ended, "ended")
    done = Signal(name="load_done")
    with m.If(start):
        m.d.sync += done.eq(0)
    with m.Elif(ended):
        m.d.sync += done.eq(1)
    return done, ended


class Fabric(wiring.Component):
    """The array of switches and units.

    Ports: ``cfg`` (the config bus, from the loader), and per network
    ``edge_in_<net>[i]`` / ``edge_out_<net>[i]`` in the order of
    ``Topology.edge_ports[(net, "in"|"out")]``; ``agcu_config[k]``, the
    active configuration of AGCU k (the AGCUs themselves sit outside the
    fabric, on the edge ports of ``Topology.agcu_ports(k)``).
    """

    def __init__(self, params: FabricParams):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params
        self.topology = Topology(params)
        members = {"cfg": In(ConfigBusSignature(params.config_beat_words))}
        for net in NETWORKS:
            sig = stream.Signature(network_layout(params, net))
            members[f"edge_in_{net}"] = In(sig).array(len(self.topology.edge_ports[(net, "in")]))
            members[f"edge_out_{net}"] = Out(sig).array(len(self.topology.edge_ports[(net, "out")]))
        # Per unit slot (row-major), the unit's performance events this cycle,
        # and the cycle its config registers take a commit.
        members.update(perf_active=Out(params.tiles), perf_starved=Out(params.tiles),
                       perf_stalled=Out(params.tiles), committing=Out(1))
        if params.agcus:
            members["agcu_config"] = Out(unit_class_for("agcu").config_layout(params)).array(params.agcus)
        super().__init__(members)
        # Filled in by elaborate(); tests read the active configurations here.
        self.config_registers = {}
        self.switches = {}
        self.units = {}

    def elaborate(self, platform):
        m = Module()
        topo = self.topology
        p = self.params

        # The config bus fans out to every unit: register it once here so the
        # loader's timing does not depend on the array size.
        bus = ConfigBusSignature(p.config_beat_words).create()
        m.d.sync += [bus.write.eq(self.cfg.write), bus.addr.eq(self.cfg.addr),
                     bus.data.eq(self.cfg.data), bus.commit.eq(self.cfg.commit)]
        # Each ConfigRegister registers the bus again (a local copy):
        # `committing` is the cycle they take the commit.
        m.d.comb += self.committing.eq(_delayed(m, bus.commit, CONFIG_BUS_STAGES, "commit_seen"))

        for cu in topo.config_units:
            reg = ConfigRegister(cu.layout, base=cu.base, beat_words=p.config_beat_words)
            m.submodules[f"cfg_{cu.name}"] = reg
            m.d.comb += [reg.bus.write.eq(bus.write), reg.bus.addr.eq(bus.addr),
                         reg.bus.data.eq(bus.data), reg.bus.commit.eq(bus.commit)]
            self.config_registers[cu.name] = reg
            if cu.kind == "agcu":
                m.d.comb += self.agcu_config[int(cu.name.split("_")[1])].eq(reg.active)
            elif cu.kind == "switch":
                sw = Switch(p)
                m.submodules[cu.name] = sw
                m.d.comb += sw.config.eq(reg.active)
                self.switches[cu.tile] = sw
            else:
                unit = unit_class_for(cu.kind)(p)
                m.submodules[cu.name] = unit
                m.d.comb += unit.config.eq(reg.active)
                self.units[cu.tile] = unit
                i = cu.tile[0] * p.cols + cu.tile[1]
                for ev in ("active", "starved", "stalled"):
                    if hasattr(unit, f"perf_{ev}"):
                        m.d.comb += getattr(self, f"perf_{ev}")[i].eq(getattr(unit, f"perf_{ev}"))

        for net in NETWORKS:
            ins = topo.switch_inputs(net)
            outs = topo.switch_outputs(net)
            in_index = {name: j for j, name in enumerate(ins)}
            edge_in = {(e.side, e.pos, e.track): i
                       for i, e in enumerate(topo.edge_ports[(net, "in")])}
            edge_out = {(e.side, e.pos, e.track): i
                        for i, e in enumerate(topo.edge_ports[(net, "out")])}
            for tile in topo.tiles():
                sw = self.switches[tile]
                unit = self.units[tile]
                sw_i = getattr(sw, f"i_{net}")
                sw_o = getattr(sw, f"o_{net}")
                for k, (side, t) in enumerate(outs):
                    if side == "U":
                        wiring.connect(m, sw_o[k], getattr(unit, f"i_{net}")[t])
                        continue
                    nb = topo.neighbour(tile, side)
                    if nb is None:
                        pos = tile[1] if side in ("N", "S") else tile[0]
                        port = getattr(self, f"edge_out_{net}")[edge_out[(side, pos, t)]]
                        wiring.connect(m, sw_o[k], wiring.flipped(port))
                    else:
                        dst = getattr(self.switches[nb], f"i_{net}")[in_index[(OPPOSITE[side], t)]]
                        wiring.connect(m, sw_o[k], dst)
                for j, (side, t) in enumerate(ins):
                    if side == "U":
                        wiring.connect(m, getattr(unit, f"o_{net}")[t], sw_i[j])
                    elif topo.neighbour(tile, side) is None:
                        pos = tile[1] if side in ("N", "S") else tile[0]
                        port = getattr(self, f"edge_in_{net}")[edge_in[(side, pos, t)]]
                        wiring.connect(m, wiring.flipped(port), sw_i[j])
        return m
