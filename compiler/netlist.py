"""The netlist: what a lowering template hands to placement and routing.

A :class:`Netlist` holds logical units (a PCU, PMU or AGCU each, with a role
label for reports and an optional pin to a physical slot) and nets. A
:class:`Net` connects one output pin (unit, network, port) to one or more
input pins: multicast, which the switches implement by letting several
outputs select the same input.

Ports: a PCU/PMU has ``unit_{vec,scal,ctrl}_{in,out}`` ports per network
(:func:`tessera.hw.unit.unit_port_counts`). An AGCU has one vector output
(its read stream, entering the fabric at the edge input of
``Topology.agcu_edge(k)``) and one vector input (its write stream, leaving at
the edge output at the same place), both port 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..hw.links import NETWORKS
from ..hw.params import FabricParams
from ..hw.unit import unit_port_counts
from .errors import NetlistError

__all__ = ["Pin", "Unit", "Net", "Netlist", "UNIT_KINDS", "port_counts"]

UNIT_KINDS = ("pcu", "pmu", "agcu")


def port_counts(params: FabricParams, kind: str, network: str) -> tuple[int, int]:
    """(input ports, output ports) of a unit of `kind` on `network`."""
    if kind == "agcu":
        # vector: the read stream out, the write stream in; scalar: the read
        # stream through the AGCU's scalar port (config ``scal``), out only.
        return {"vec": (1, 1), "scal": (0, 1)}.get(network, (0, 0))
    return unit_port_counts(params, network)


@dataclass(frozen=True)
class Pin:
    """Port `port` of `unit` on `network`; whether it is an input or an
    output follows from its place in a :class:`Net`."""
    unit: str
    network: str
    port: int = 0

    def __str__(self):
        return f"{self.unit}.{self.network}[{self.port}]"


@dataclass(frozen=True)
class Unit:
    """A logical unit. `pin` fixes its slot: a tile ``(row, col)`` for a PCU
    or PMU (of the right checkerboard colour), an AGCU index for an AGCU."""
    name: str
    kind: str
    role: str = ""
    pin: object = None

    @property
    def label(self) -> str:
        return f"{self.kind.upper()} {self.role or self.name}"


@dataclass(frozen=True)
class Net:
    name: str
    source: Pin
    sinks: tuple

    @property
    def network(self) -> str:
        return self.source.network

    def __str__(self):
        return f"{self.name}: {self.source} -> {', '.join(map(str, self.sinks))}"


@dataclass
class Netlist:
    units: dict = field(default_factory=dict)      # name -> Unit, in insertion order
    nets: list = field(default_factory=list)

    def add_unit(self, name: str, kind: str, role: str = "", pin=None) -> Unit:
        if not isinstance(name, str) or not name:
            raise NetlistError(f"unit name must be a non-empty string, got {name!r}")
        if name in self.units:
            raise NetlistError(f"unit {name!r} is defined twice")
        if kind not in UNIT_KINDS:
            raise NetlistError(f"unit {name!r}: kind {kind!r} is not one of {', '.join(UNIT_KINDS)}")
        if pin is not None:
            pin = int(pin) if kind == "agcu" and isinstance(pin, int) else (
                tuple(pin) if isinstance(pin, (tuple, list)) else pin)
        unit = Unit(name, kind, role, pin)
        self.units[name] = unit
        return unit

    def connect(self, name: str, source, *sinks) -> Net:
        """Add net `name` from output pin `source` to input pins `sinks`
        (``Pin`` or ``(unit, network, port)`` tuples)."""
        if any(n.name == name for n in self.nets):
            raise NetlistError(f"net {name!r} is defined twice")
        src = source if isinstance(source, Pin) else Pin(*source)
        dst = tuple(s if isinstance(s, Pin) else Pin(*s) for s in sinks)
        if not dst:
            raise NetlistError(f"net {name!r} from {src} has no sinks")
        net = Net(name, src, dst)
        self.nets.append(net)
        return net

    def validate(self, params: FabricParams):
        """Raise NetlistError naming the first pin or constraint that cannot work."""
        driven = {}
        fed = {}
        for net in self.nets:
            if net.network not in NETWORKS:
                raise NetlistError(f"net {net.name!r}: network {net.network!r} is not one of "
                                   f"{', '.join(NETWORKS)}")
            for pin, direction in [(net.source, "out")] + [(s, "in") for s in net.sinks]:
                if pin.unit not in self.units:
                    raise NetlistError(f"net {net.name!r}: no unit named {pin.unit!r}")
                if pin.network != net.network:
                    raise NetlistError(f"net {net.name!r}: pin {pin} is on the {pin.network} "
                                       f"network but the net starts on {net.network}")
                kind = self.units[pin.unit].kind
                n = port_counts(params, kind, pin.network)[direction == "out"]
                if not isinstance(pin.port, int) or not 0 <= pin.port < n:
                    raise NetlistError(
                        f"net {net.name!r}: {kind.upper()} {pin.unit!r} has {n} {pin.network} "
                        f"{'output' if direction == 'out' else 'input'} port(s), not port {pin.port}")
            if net.source in driven:
                raise NetlistError(f"output {net.source} drives two nets: {driven[net.source]!r} "
                                   f"and {net.name!r} (use one net with several sinks)")
            driven[net.source] = net.name
            if len(set(net.sinks)) != len(net.sinks):
                raise NetlistError(f"net {net.name!r} lists a sink twice")
            for s in net.sinks:
                if s in fed:
                    raise NetlistError(f"input {s} is fed by two nets: {fed[s]!r} and {net.name!r}")
                fed[s] = net.name
        for unit in self.units.values():
            if unit.pin is None:
                continue
            if unit.kind == "agcu":
                if not isinstance(unit.pin, int) or not 0 <= unit.pin < params.agcus:
                    raise NetlistError(f"unit {unit.name!r} is pinned to AGCU {unit.pin!r}; "
                                       f"preset {params.name!r} has AGCUs 0..{params.agcus - 1}")
            else:
                ok = (isinstance(unit.pin, tuple) and len(unit.pin) == 2
                      and all(isinstance(v, int) for v in unit.pin)
                      and 0 <= unit.pin[0] < params.rows and 0 <= unit.pin[1] < params.cols)
                if not ok:
                    raise NetlistError(f"unit {unit.name!r} is pinned to {unit.pin!r}, not a tile "
                                       f"of the {params.rows}x{params.cols} grid")
                slot_kind = params.unit_kind(*unit.pin)
                if slot_kind != unit.kind:
                    raise NetlistError(f"unit {unit.name!r} is a {unit.kind.upper()} but tile "
                                       f"{unit.pin} holds a {slot_kind.upper()}")

    def count(self) -> dict:
        return {k: sum(u.kind == k for u in self.units.values()) for k in UNIT_KINDS}
