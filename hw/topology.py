"""Topology as data: the grid, the switch ports, the links between switches,
the edge ports and the config units, all derived from FabricParams.

The RTL generator (:mod:`.fabric`), the bitstream format and the compiler's
router all read this one description (in the manner of StanfordAHA canal),
so they cannot disagree about which wire is which.

Coordinates: tile (row, col), row 0 is the north edge, col 0 the west edge.
Switch output (side, t) of tile (r, c) drives input (opposite side, t) of the
neighbour on that side; at the array boundary it is an edge output port, and
the matching input is an edge input port.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .config import config_words
from .links import NETWORKS
from .params import FabricParams
from .switch import SIDES, switch_config_layout, switch_ports

__all__ = ["Topology", "ConfigUnit", "EdgePort", "OPPOSITE", "STEP", "unit_class_for"]

OPPOSITE = {"N": "S", "S": "N", "E": "W", "W": "E"}
STEP = {"N": (-1, 0), "S": (1, 0), "E": (0, 1), "W": (0, -1)}


def unit_class_for(kind: str):
    """The component class of a config unit of `kind` ('pcu', 'pmu' or
    'agcu'; AGCUs sit outside the fabric, on its west/east edge ports)."""
    if kind == "pcu":
        from .pcu import PCU
        return PCU
    if kind == "pmu":
        from .pmu import PMU
        return PMU
    if kind == "agcu":
        from .agcu import AGCU
        return AGCU
    raise ValueError(f"unknown unit kind {kind!r}")


@dataclass(frozen=True)
class ConfigUnit:
    index: int
    name: str          # "sw_r_c", "pcu_r_c" / "pmu_r_c" or "agcu_k"
    kind: str          # "switch", "pcu", "pmu", "agcu"
    tile: tuple        # the tile; for an AGCU, the edge tile it attaches to
    layout: object     # data.StructLayout
    base: int          # first payload word
    words: int


@dataclass(frozen=True)
class EdgePort:
    """A dangling switch link at the array boundary."""
    network: str
    direction: str     # "in" (into the fabric) or "out"
    side: str          # N, E, S, W
    pos: int           # column for N/S, row for E/W
    track: int

    @property
    def name(self) -> str:
        return f"{self.network}_{self.direction}_{self.side}{self.pos}_{self.track}"


class Topology:
    def __init__(self, params: FabricParams):
        if not isinstance(params, FabricParams):
            raise TypeError(f"params must be a FabricParams, not {params!r}")
        self.params = params

    # -- switch ports ------------------------------------------------------------
    def switch_inputs(self, network: str) -> list:
        return switch_ports(self.params, network)[0]

    def switch_outputs(self, network: str) -> list:
        return switch_ports(self.params, network)[1]

    def tiles(self):
        for r in range(self.params.rows):
            for c in range(self.params.cols):
                yield (r, c)

    def neighbour(self, tile, side):
        dr, dc = STEP[side]
        r, c = tile[0] + dr, tile[1] + dc
        if 0 <= r < self.params.rows and 0 <= c < self.params.cols:
            return (r, c)
        return None

    def edge_port(self, network, direction, tile, side, track) -> EdgePort:
        pos = tile[1] if side in ("N", "S") else tile[0]
        return EdgePort(network, direction, side, pos, track)

    def edge_tile(self, port: EdgePort) -> tuple:
        p = self.params
        if port.side == "N":
            return (0, port.pos)
        if port.side == "S":
            return (p.rows - 1, port.pos)
        if port.side == "W":
            return (port.pos, 0)
        return (port.pos, p.cols - 1)

    @cached_property
    def edge_ports(self) -> dict:
        """{(network, direction): [EdgePort, ...]} in a fixed order."""
        ports = {(net, d): [] for net in NETWORKS for d in ("in", "out")}
        for net in NETWORKS:
            for tile in self.tiles():
                for side, t in self.switch_outputs(net):
                    if side in SIDES and self.neighbour(tile, side) is None:
                        ports[(net, "out")].append(self.edge_port(net, "out", tile, side, t))
                for side, t in self.switch_inputs(net):
                    if side in SIDES and self.neighbour(tile, side) is None:
                        ports[(net, "in")].append(self.edge_port(net, "in", tile, side, t))
        return ports

    def find_edge(self, network, direction, side, pos, track) -> int:
        ports = self.edge_ports[(network, direction)]
        for i, port in enumerate(ports):
            if (port.side, port.pos, port.track) == (side, pos, track):
                return i
        raise ValueError(f"no {direction} edge port {side}{pos} track {track} on the "
                         f"{network} network of a {self.params.rows}x{self.params.cols} grid")

    # -- configuration -----------------------------------------------------------
    @cached_property
    def config_units(self) -> list:
        units = []
        base = 0
        sw_layout = switch_config_layout(self.params)
        for tile in self.tiles():
            words = config_words(sw_layout)
            units.append(ConfigUnit(len(units), f"sw_{tile[0]}_{tile[1]}", "switch", tile,
                                    sw_layout, base, words))
            base += words
        for tile in self.tiles():
            kind = self.params.unit_kind(*tile)
            layout = unit_class_for(kind).config_layout(self.params)
            words = config_words(layout)
            units.append(ConfigUnit(len(units), f"{kind}_{tile[0]}_{tile[1]}", kind, tile,
                                    layout, base, words))
            base += words
        for k in range(self.params.agcus):
            layout = unit_class_for("agcu").config_layout(self.params)
            words = config_words(layout)
            units.append(ConfigUnit(len(units), f"agcu_{k}", "agcu", self.edge_tile(self.agcu_edge(k)),
                                    layout, base, words))
            base += words
        return units

    # -- AGCUs ---------------------------------------------------------------------
    def agcu_edge(self, k: int) -> EdgePort:
        """The vector edge input that AGCU `k` drives (its read stream); its
        write stream takes the edge output at the same place. AGCUs 0..rows-1
        sit on the west edge (row k), the rest on the east edge, track 0."""
        p = self.params
        if not 0 <= k < p.agcus:
            raise ValueError(f"no AGCU {k}: preset {p.name!r} has {p.agcus}")
        side, pos = ("W", k) if k < p.rows else ("E", k - p.rows)
        return EdgePort("vec", "in", side, pos, 0)

    def agcu_ports(self, k: int) -> tuple:
        """(index into edge_ports[("vec", "in")], index into
        edge_ports[("vec", "out")]) of AGCU `k`."""
        e = self.agcu_edge(k)
        return (self.find_edge("vec", "in", e.side, e.pos, 0),
                self.find_edge("vec", "out", e.side, e.pos, 0))

    def agcu_scal_port(self, k: int) -> int:
        """Index into edge_ports[("scal", "in")] of AGCU `k`'s scalar port
        (same side and row as its vector ports, track 0)."""
        e = self.agcu_edge(k)
        return self.find_edge("scal", "in", e.side, e.pos, 0)

    def agcu_unit(self, k: int) -> ConfigUnit:
        return self.config_units[2 * self.params.tiles + k]

    @cached_property
    def payload_words(self) -> int:
        return sum(u.words for u in self.config_units)

    def config_unit(self, name: str) -> ConfigUnit:
        for u in self.config_units:
            if u.name == name:
                return u
        raise KeyError(f"no config unit named {name!r}")

    def switch_unit(self, tile) -> ConfigUnit:
        return self.config_units[tile[0] * self.params.cols + tile[1]]

    def slot_unit(self, tile) -> ConfigUnit:
        return self.config_units[self.params.tiles + tile[0] * self.params.cols + tile[1]]
